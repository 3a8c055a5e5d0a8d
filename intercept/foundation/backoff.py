"""Waiting before trying again: exponential backoff with jitter, and ``Retry-After``.

Pure functions of their arguments (the random source and the wall-clock time are passed in), so
every caller keeps its own numbers and tests can pin them:

- `backoff(attempt, base=, cap=, jitter=)`: ``min(cap, base * 2**attempt)`` times a uniform
  factor drawn from ``jitter`` (e.g. ``(0.5, 1.0)``: between half and all of it).
- `parse_retry_after(value)`: an HTTP ``Retry-After`` value (RFC 9110 §10.2.3) in either form,
  delay-seconds (``"120"``) or an HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``), as seconds
  from now, capped; ``None`` when absent or unreadable, so the caller falls back to its own wait.
"""

from __future__ import annotations

import math
import random
import re
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Protocol

MAX_RETRY_AFTER = 86400.0
"""Seconds: a ``Retry-After`` further away than a day is read as a day."""

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


class Uniform(Protocol):
    """What `backoff` needs of a random source (`random.Random`, or the `random` module)."""

    def uniform(self, a: float, b: float) -> float: ...


def backoff(attempt: int, *, base: float, cap: float, jitter: tuple[float, float] = (0.5, 1.0),
            max_exponent: int = 30, rng: Uniform = random) -> float:
    """Seconds to wait before try number ``attempt + 1`` (``attempt`` failures so far).

    ``base * 2**min(attempt, max_exponent)``, at most ``cap``, times a factor drawn uniformly from
    ``jitter``; so attempt 0 waits about ``base``."""
    ceiling = min(cap, base * math.pow(2, min(max(attempt, 0), max_exponent)))
    low, high = jitter
    return ceiling * rng.uniform(low, high)


def parse_retry_after(value: str | None, *, now: float | None = None,
                      cap: float = MAX_RETRY_AFTER) -> float | None:
    """The seconds a ``Retry-After`` header asks us to wait, at most ``cap``.

    Delay-seconds (a non-negative number; a decimal fraction is tolerated) or an HTTP-date, read
    against ``now`` (Unix seconds; the wall clock when omitted): a date already past means 0.
    ``None`` when the value is missing, negative, or neither form."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        return min(float(text), cap)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as such
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), cap)
