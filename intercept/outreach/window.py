"""When a campaign may text someone: a daily window in the recipient's local time, and rates.

Pure functions, no I/O. A number's time zone comes from `phonenumbers` (by country and, in
North America, area code); the city's time zone is the fallback when the number has none, and
the choice when the number has several and the city's is one of them. A number with several
zones and none of them the city's is texted only when the window is open in all of them.
The window and the rates themselves are `intercept.foundation.schedule`'s (config checks them too).
"""

from __future__ import annotations

import functools

import phonenumbers
from phonenumbers import timezone as _timezone

from ..foundation.schedule import MARGIN, Window, parse_rate, zone

__all__ = ["MARGIN", "Window", "parse_rate", "zone", "zones_for"]


@functools.lru_cache(maxsize=65536)
def zones_for(number: str, fallback: str) -> tuple[str, ...]:
    """The time zones in which to read the window for `number` (E.164)."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return (fallback,)
    names = sorted({z for z in _timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"})
    if not names:
        return (fallback,)
    if len(names) == 1:
        return (names[0],)
    if fallback in names:
        return (fallback,)
    return tuple(names)
