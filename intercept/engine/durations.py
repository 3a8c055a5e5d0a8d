"""Durations written the way people write them: "15s", "20m", "1h30m", "2d"."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")

DURATION_PATTERN = (r"^ *(?:[0-9]+(?:\.[0-9]+)? *"
                    r"|(?:[0-9]+(?:\.[0-9]+)? *(?:[mM][sS]|[sSmMhHdD]) *)+)$")
"""Every duration text `parse_duration` accepts, and no other: a number of seconds, or numbers
each with a unit (ms, s, m, h, d; any case), spaces allowed around them. It is also the
`pattern` of durations in the scenario JSON Schema (JavaScript and Python read it alike)."""
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`. A bare number is seconds. Raises ValueError with a readable message."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like '15s' or '20m', got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"a duration cannot be negative, got {text!r}")
        return float(text)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration like '15s', '20m' or '1h30m', got {text!r}")
    compact = text.lower().replace(" ", "")
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", compact):
        return float(compact)
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))


class Duration(float):
    """A duration decoded once: its value is the seconds, `str()` gives it as written.

    Config fields of this type are parsed when the config is decoded (`Duration.decode` is
    the `dec_hook` of `intercept.config`), so the code that uses them does arithmetic on
    seconds and messages still show what the user wrote ("interval is '30s'; ...").
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, seconds: float, text: str | None = None) -> Duration:
        self = super().__new__(cls, seconds)
        self.text = f"{seconds:g}s" if text is None else text
        return self

    @classmethod
    def parse(cls, text: str) -> Duration:
        """The duration written `text` ("15s", "20m", "1h30m", "2d", "90"); raises ValueError
        with a sentence saying what is expected."""
        return cls(parse_duration(text), text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (float(self), self.text))


class OptionalDuration(Duration):
    """A duration that may be left empty (""): then it is 0 seconds and false."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(0.0, "") if text == "" else cls(parse_duration(text), text)


def decode_duration(type_: type, value: Any) -> Any:
    """msgspec's `dec_hook` for `Duration` fields: a string, parsed (a ValueError names what
    is wrong); anything else is refused as msgspec refuses a wrong type."""
    if isinstance(type_, type) and issubclass(type_, Duration):
        if not isinstance(value, str):
            raise ValueError(f"expected 'str', got '{type(value).__name__}'")
        return type_.parse(value)
    raise NotImplementedError(f"no decoder for {type_!r}")


def format_age(seconds: float) -> str:
    """A wait as a person reads it, to the two largest units: "45s", "12m", "3h05m", "2d4h"."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"
