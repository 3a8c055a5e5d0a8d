"""The send rate: a token bucket whose limit follows throttling, when throttling persists.

`SendRate` is plain state; time is passed in, so it is tested without a clock. The SMPP client
asks `delay(now)` before each submit_sm and sleeps that long (zero when a token is free), and
reports every answer with `accepted(now)` or `throttled(now)`; the Twilio client keeps one per
sending number and reports its answers (HTTP 429 is the throttle) the same way.

An SMSC (ESME_RTHROTTLED, ESME_RMSGQFUL) or a provider (HTTP 429) throttles for two reasons,
told apart by how the share of throttled answers moves with the rate sent:

- **Sporadic refusals** (a congested upstream): a small share of submits, whatever the rate.
  The rate is left alone; the client retries that message after a short, jittered wait.
- **A rate limit** (a contracted TPS): the share grows with the rate sent. When, over one
  `window`, at least `min_answers` answers came back and `threshold` of them or more were
  throttles, the limit becomes what the SMSC accepted in that window (a little under it).

The cut never goes below `floor_share` of the reference rate (the configured maximum, or the
rate the SMSC accepted when throttling first persisted) unless throttling persists at the
floor for `persist` windows in a row: then the floor gives way to what is accepted (down to
`MIN_RATE`). Windows
with under half the threshold of throttles raise the limit: by a quarter (plus one) after a cut
until throttles show again, then by `probe` (5%, doubling in each quiet window up to a
quarter, plus one), up to the configured
maximum; without one the limit is lifted after `recover_after` quiet seconds. Windows in
between ease the limit toward what was accepted.
"""

from __future__ import annotations

MIN_RATE = 1.0
"""The limit never drops below this many submits per second."""


class SendRate:
    """Token bucket + a limit learned from persistent throttling. `rate` is None while
    unlimited."""

    def __init__(self, max_rate: float | None = None, *, window: float = 1.0,
                 threshold: float = 0.25, min_answers: int = 30, floor_share: float = 0.5,
                 persist: int = 3, increase: float = 1.25, probe: float = 1.05,
                 recover_after: float = 10.0,
                 margin: float = 0.95):
        if max_rate is not None and max_rate <= 0:
            raise ValueError(f"max_rate is {max_rate}; it must be positive, or None for no "
                             "limit.")
        self.max_rate = max_rate
        self.rate: float | None = max_rate
        self.window = window
        self.threshold = threshold
        self.min_answers = min_answers
        self.floor_share = floor_share
        self.persist = persist
        self.increase = increase
        self.recover_after = recover_after
        self.margin = margin
        self.probe = probe
        self._fast = True
        self.reference: float | None = max_rate
        """What the floor is relative to: the configured rate, or the one learned."""
        self.floor_scale = 1.0
        self.tokens = self._burst()
        self.throttles = 0
        self.cuts = 0
        self._stamp: float | None = None
        self._window_start: float | None = None
        self._ok = 0
        self._refused = 0
        self._last_cut = float("-inf")
        self._at_floor = 0
        self._last_share = 0.0
        self._saturated_at = 0.0
        self._last_event = 0.0
        self._ok_before = 0
        self._quiet_run = 0
        self._last_trouble = float("-inf")

    # -- the bucket ----------------------------------------------------------------------------

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
        self._roll(now)
        if self.rate is None:
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # (float sums: never ask for a sleep of nothing)
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    # -- answers -------------------------------------------------------------------------------

    def accepted(self, now: float) -> None:
        """The SMSC accepted a submit_sm."""
        self._roll(now)
        self._ok += 1

    def throttled(self, now: float) -> bool:
        """The SMSC throttled a submit_sm; True when this answer lowered the limit."""
        self.throttles += 1
        cuts = self.cuts
        self._roll(now)
        if self._refused == 0:  # from here on the SMSC is saturated: what it accepts is its rate
            self._saturated_at, self._ok_before = now, self._ok
        self._refused += 1
        self._roll(now, early=True)
        return self.cuts != cuts

    @property
    def floor(self) -> float:
        """The lowest limit a cut may set now."""
        if self.reference is None:
            return MIN_RATE
        return max(MIN_RATE, self.reference * self.floor_share * self.floor_scale)

    @property
    def share(self) -> float:
        """The share of throttled answers in the last complete window."""
        return self._last_share

    def _roll(self, now: float, *, early: bool = False) -> None:
        """Close the current window when it is over and act on what it saw.

        With `early`, the window closes at once when it already proves a limit: throttles for
        a quarter of a window, enough of them and a share over the threshold (a burst against
        a cap is not answered for a whole window).
        """
        if self._window_start is None or now - self._last_event > 2 * self.window:
            # the first answer, or after an idle gap, which says nothing about the limit
            self._window_start = self._last_event = now
            self._ok = self._refused = self._ok_before = 0
            return
        self._last_event = now
        elapsed = now - self._window_start
        answers = self._ok + self._refused
        share = self._refused / answers if answers else 0.0
        saturated = now - self._saturated_at if self._refused else 0.0
        proven = (early and saturated >= self.window / 4 and self._refused >= self.min_answers
                  and share >= self.threshold)
        # A window closes once it is long enough and holds enough answers to judge, or when
        # it has grown to ten windows (a slow sender: judged on fewer answers).
        judged = answers >= self.min_answers or elapsed >= 10 * self.window
        if not proven and (elapsed < self.window or not judged):
            return
        enough = answers >= max(2, self.min_answers // 2)
        # Since the first throttle the SMSC was saturated: what it accepted then is its rate
        # (the whole window would count the time our own demand was low).
        accepted = ((self._ok - self._ok_before) / saturated
                    if saturated >= self.window / 4 else self._ok / elapsed)
        self._last_share = share
        if enough and share >= self.threshold:
            self._persisting(now, accepted=accepted)
        elif share < self.threshold / 2:
            self._quiet(now)
        elif enough:
            self._holding(now, accepted=accepted)
        if share >= self.threshold / 2:
            self._quiet_run = 0
            self._fast = False  # near the limit: from now on, probe gently
            self._last_trouble = now
        self._window_start = now
        self._ok = self._refused = self._ok_before = 0
        self._saturated_at = now

    def _persisting(self, now: float, *, accepted: float) -> None:
        if now - self._last_cut < self.window * 1.5:
            return  # answers to submits sent before the last cut are still coming back
        if self.max_rate is None and (self.rate is None or self.reference is None):
            self.reference = max(MIN_RATE, accepted)  # a fresh measure of the SMSC's limit
        if self.rate is not None and self.rate <= self.floor + 1e-9:
            self._at_floor += 1
            if self._at_floor >= self.persist and self.reference is not None:
                # throttling persists at the floor: the floor gives way to what is accepted
                wanted = max(MIN_RATE, accepted * self.margin)
                self.floor_scale = min(self.floor_scale,
                                       wanted / (self.reference * self.floor_share))
                self._at_floor = 0
        self._fast = True
        target = max(self.floor, accepted * self.margin)
        if self.rate is not None:
            target = min(self.rate, target)  # a cut never raises the limit
        self._refill(now)
        if target != self.rate:
            self.rate = target
            self.cuts += 1
        self.tokens = min(self.tokens, self._burst())
        self._last_cut = now

    def _quiet(self, now: float) -> None:
        self._at_floor = 0
        recovered = now - max(self._last_cut, self._last_trouble) >= self.recover_after
        if recovered:
            self.floor_scale = 1.0
        if self.rate is None or self.rate == self.max_rate:
            return
        if self.max_rate is None and recovered:
            self.rate = None  # quiet for long enough: the limit is lifted
            self.tokens = 1.0
            return
        self._refill(now)
        if self._fast:  # after a cut and no sign of the limit since: back up quickly
            grown = self.rate * self.increase + 1.0
        else:  # past what was accepted: probe gently, faster while it stays quiet
            step = min(self.increase - 1.0, (self.probe - 1.0) * 2 ** self._quiet_run)
            self._quiet_run += 1
            grown = self.rate * (1.0 + step) + 1.0
        self.rate = grown if self.max_rate is None else min(self.max_rate, grown)

    def _holding(self, now: float, *, accepted: float) -> None:
        """Some throttling, not enough to prove a limit: ease toward what was accepted."""
        if self.rate is None or now - self._last_cut < self.window * 1.5:
            return
        self._refill(now)
        self.rate = max(self.floor, min(self.rate, accepted * (2 - self.margin)))
