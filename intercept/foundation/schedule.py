"""When something may happen: a daily window in local time, and rates ("30/h").

Pure functions, no I/O, below every layer: config checks campaign windows and rates with them
when it is decoded, and outreach (`intercept.outreach.window`) applies them to each number.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|m|h|d)")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MARGIN = 60.0
"""A text is created only if the window is still open this many seconds later, so that the
commit and the submit that follow happen inside it too."""


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The time zone called `name`; raises ValueError naming it if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as "
                         "'America/New_York')") from None


@dataclass(frozen=True, slots=True)
class Window:
    """A daily window, ``start`` to ``end`` minutes after local midnight (end exclusive)."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"09:00-20:00"``; ``"00:00-24:00"`` is the whole day. Raises ValueError."""
        found = _WINDOW.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"expected a window like '09:00-20:00', got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{text!r} is not a time of day range (00:00 to 24:00)")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise ValueError(f"the window {text!r} must end after it starts, on the same day")
        if end - start < 2:
            raise ValueError(f"the window {text!r} is too short; give it at least 2 minutes")
        return cls(start, end)

    @property
    def whole_day(self) -> bool:
        return self.start == 0 and self.end == 24 * 60

    def __str__(self) -> str:
        return (f"{self.start // 60:02d}:{self.start % 60:02d}-"
                f"{self.end // 60:02d}:{self.end % 60:02d}")

    def is_open(self, now: float, zones: tuple[str, ...], margin: float = MARGIN) -> bool:
        """Is it inside the window in every zone, now and `margin` seconds from now?"""
        if self.whole_day:
            return True
        for name in zones:
            local = datetime.fromtimestamp(now, zone(name))
            second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
            if not self.start * 60 <= second or second + margin > self.end * 60:
                return False
        return True

    def next_open(self, now: float, zones: tuple[str, ...], margin: float = MARGIN
                  ) -> float | None:
        """The first time at or after `now` when `is_open` holds; None if not within 8 days
        (the window is never open in all of the zones at once)."""
        if self.is_open(now, zones, margin):
            return now
        candidates: set[float] = set()
        for name in zones:
            tz = zone(name)
            today = datetime.fromtimestamp(now, tz).date()
            for days in range(9):
                day = today + timedelta(days=days)
                at = datetime(day.year, day.month, day.day, self.start // 60, self.start % 60,
                              tzinfo=tz).timestamp()
                if at > now:
                    candidates.add(at)
        for at in sorted(candidates):
            if self.is_open(at, zones, margin):
                return at
        return None


def parse_rate(text: str) -> float:
    """Messages per second in ``"30/h"``, ``"1/m"``, ``"0.5/s"`` or ``"200/d"``. Raises
    ValueError."""
    found = _RATE.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(f"expected a rate like '30/h', '1/m' or '2/s', got {text!r}")
    per_second = float(found.group(1)) / _PER[found.group(2)]
    if per_second <= 0:
        raise ValueError(f"the rate {text!r} must be more than 0")
    return per_second
