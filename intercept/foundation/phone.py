"""Phone number helpers: E.164 normalisation and masking for logs."""

from __future__ import annotations

import phonenumbers

from .caching import short_key_cache

CACHED_NUMBER_CHARS = 64
"""Longer strings are parsed but not remembered: no real number is written that long, and the
cache holds at most 65,536 keys of this size whatever strangers send (1,500 invalid 60 KB
"numbers" had grown an unguarded cache by 82 MiB)."""


def mask(number: str) -> str:
    """A number safe to log at INFO: country code and last two digits, e.g. ``+1•••••••23``."""
    if len(number) <= 4:
        return "•" * len(number)
    head = 2 if number.startswith("+") else 0
    return number[:head] + "•" * (len(number) - head - 2) + number[-2:]


@short_key_cache(maxsize=65536, max_key_chars=CACHED_NUMBER_CHARS)
def to_e164(raw: str, region: str = "US") -> str | None:
    """`raw` as +E.164 if it is a valid number (national numbers read in `region`), else None."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
