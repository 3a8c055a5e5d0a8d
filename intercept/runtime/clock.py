"""Wall-clock time that follows trio's clock, so MockClock drives timers in tests."""

from __future__ import annotations

import time

import trio

_MARGIN = 1e-5


class WallClock:
    """`now()` is Unix seconds; it advances with `trio.current_time()` (virtual under MockClock).

    Create it inside `trio.run`, or outside with ``anchor=False`` and `anchor()` it once trio
    runs. Timers are stored as Unix seconds so they survive restarts.
    """

    def __init__(self, start: float | None = None, *, anchor: bool = True):
        self._start = start
        self._wall0 = 0.0
        self._trio0 = 0.0
        if anchor:
            self.anchor()

    def anchor(self) -> None:
        """Follow trio's clock from now on (call it inside `trio.run`)."""
        self._wall0 = time.time() if self._start is None else self._start
        self._trio0 = trio.current_time()

    def now(self) -> float:
        return self._wall0 + (trio.current_time() - self._trio0)

    def deadline(self, at: float) -> float:
        """A trio deadline by which `now() >= at` holds.

        Unix times are ~1.8e9, so converting between the two clocks rounds by up to a few
        tenths of a microsecond; the margin makes sure a task woken at this deadline sees
        `now() >= at` and does not spin (under MockClock it would spin forever).
        """
        return self._trio0 + (at - self._wall0) + _MARGIN
