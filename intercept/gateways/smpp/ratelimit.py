"""The send rate: a token bucket whose rate adapts to the SMSC's throttling (AIMD).

`SendRate` is plain state; time is passed in, so it is tested without a clock. The client
asks `delay(now)` before each submit_sm and sleeps that long (zero when a token is free).

- With a configured maximum (`max_rate` submits per second) the bucket never goes faster.
- A throttle answer (ESME_RTHROTTLED, ESME_RMSGQFUL) halves the rate, measured from what
  actually went out in the last second when no limit was set. Answers to the requests that
  were already in flight come back throttled too, so the rate is cut at most once per
  `cooldown` seconds.
- Every `cooldown` seconds without a throttle the rate grows by a quarter, up to `max_rate`;
  with no configured maximum the limit is lifted after `recover_after` quiet seconds.
"""

from __future__ import annotations

MIN_RATE = 1.0
"""The adaptive rate never drops below this many submits per second."""


class SendRate:
    """Token bucket + adaptive limit. `rate` is None while unlimited."""

    def __init__(self, max_rate: float | None = None, *, cooldown: float = 1.0,
                 recover_after: float = 30.0, increase: float = 1.25, decrease: float = 0.5):
        if max_rate is not None and max_rate <= 0:
            raise ValueError(f"max_rate is {max_rate}; it must be positive, or None for no "
                             "limit.")
        self.max_rate = max_rate
        self.rate: float | None = max_rate
        self.cooldown = cooldown
        self.recover_after = recover_after
        self.increase = increase
        self.decrease = decrease
        self.tokens = self._burst()
        self._stamp: float | None = None
        self._last_cut = float("-inf")
        self._last_raise = float("-inf")
        self._window_start = 0.0
        self._window_count = 0
        self._last_window_rate = 0.0
        self.throttles = 0

    def _burst(self) -> float:
        return 1.0 if self.rate is None else max(1.0, self.rate * 0.1)

    @property
    def limited(self) -> bool:
        return self.rate is not None

    def _refill(self, now: float) -> None:
        if self._stamp is not None and self.rate is not None:
            self.tokens = min(self._burst(), self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self, now: float) -> float:
        """Take a token if one is free (return 0), else how long to wait before asking again."""
        if self.rate is None:
            self._count(now)
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # (float sums: never ask for a sleep of nothing)
            self.tokens = max(0.0, self.tokens - 1.0)
            self._count(now)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def _count(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self._last_window_rate = self._window_count / elapsed if elapsed < 2.0 else 0.0
            self._window_start = now
            self._window_count = 0
        self._window_count += 1

    def measured(self, now: float) -> float:
        """Submits per second over about the last second."""
        elapsed = now - self._window_start
        if elapsed >= 2.0:
            return 0.0
        return max(self._last_window_rate, self._window_count / max(elapsed, 1.0))

    def throttled(self, now: float) -> bool:
        """The SMSC said slow down; return True when this cut the rate."""
        self.throttles += 1
        if now - self._last_cut < self.cooldown:
            return False
        base = self.rate if self.rate is not None else max(self.measured(now), MIN_RATE * 2)
        self._refill(now)
        self.rate = max(MIN_RATE, base * self.decrease)
        self.tokens = min(self.tokens, self._burst())
        self._last_cut = now
        self._last_raise = now
        return True

    def accepted(self, now: float) -> None:
        """A submit went through: let the rate creep back up."""
        if self.rate is None or self.rate == self.max_rate:
            return
        if now - self._last_raise < self.cooldown:
            return
        self._last_raise = now
        if self.max_rate is None and now - self._last_cut >= self.recover_after:
            self.rate = None
            self.tokens = 1.0
            return
        self._refill(now)
        grown = self.rate * self.increase + 1.0
        self.rate = grown if self.max_rate is None else min(self.max_rate, grown)
