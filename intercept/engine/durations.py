"""Durations written the way people write them: "15s", "20m", "1h30m", "2d"."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`. A bare number is seconds. Raises ValueError with a readable message."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like '15s' or '20m', got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"a duration cannot be negative, got {text!r}")
        return float(text)
    compact = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", compact):
        return float(compact)
    parts = _PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"expected a duration like '15s', '20m' or '1h30m', got {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)
