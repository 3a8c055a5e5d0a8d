"""Messages in and out per minute, from the server's own counters (no store reads).

`Rates.sample()` is called by every overview request and by nobody else; it keeps a few
minutes of (time, in, out) samples and answers the count over the last minute (fewer seconds
than that, just after the server started, are not scaled up).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

WINDOW = 60.0
"""The rates are per minute, measured over this many seconds."""
KEEP = 300.0
"""Seconds of samples kept."""


class Rates:
    """Per-minute rates of two ever-growing counters read by `read()` -> (in, out)."""

    def __init__(self, read: Callable[[], tuple[float, float]], now: Callable[[], float]):
        self._read, self._now = read, now
        self._samples: deque[tuple[float, float, float]] = deque()
        self.sample()

    def sample(self) -> tuple[float, float]:
        """Record the counters now; return messages (in, out) per minute."""
        now = self._now()
        got_in, got_out = self._read()
        self._samples.append((now, got_in, got_out))
        while self._samples and self._samples[0][0] < now - KEEP:
            self._samples.popleft()
        base = self._samples[0]  # the newest sample a window old, else the oldest
        for sample in self._samples:
            if sample[0] > now - WINDOW:
                break
            base = sample
        elapsed = now - base[0]
        if elapsed <= 0:
            return 0.0, 0.0
        scale = 60.0 / max(elapsed, WINDOW)  # no extrapolation from a few seconds
        return (got_in - base[1]) * scale, (got_out - base[2]) * scale
