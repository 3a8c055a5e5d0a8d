"""Send slots per sending number and overall, handed out as reservations.

A provider or carrier allows so many messages per second from one number (1 for a US long
code, more for toll-free numbers and short codes) and so many overall. Rather than hold a send
slot while it waits, a message that cannot go now gets a reserved time and is handed back to
the sender's queue until then (`GatewayRetryLater`); when it comes back, its reservation lets
it through. Reservations keep the order in which messages asked.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..foundation.caching import BoundedDict


class SendSlots:
    """Reserve send times so that no number exceeds its rate and all `overall`/s.

    A number's rate is `rates[number]` when given, else `per_number` (None or 0: no limit).
    """

    tolerance = 1e-3
    """A reservation is due this early (clock conversions round by microseconds)."""

    def __init__(self, *, per_number: float | None, overall: float = 0.0,
                 rates: Mapping[str, float] | None = None,
                 max_reservations: int = 1_000_000):
        if per_number is not None and per_number < 0:
            raise ValueError("per_number must not be negative")
        self.number_gap = 1.0 / per_number if per_number else 0.0
        self.gaps = {number: 1.0 / rate for number, rate in (rates or {}).items() if rate > 0}
        self.overall_gap = 1.0 / overall if overall > 0 else 0.0
        self.max_reservations = max_reservations
        self._next_for_number: dict[str, float] = {}
        self._next_overall = float("-inf")
        self._reserved: BoundedDict[str, float] = BoundedDict(max_reservations)

    def __len__(self) -> int:
        return len(self._reserved)

    def claim(self, key: str, number: str, now: float) -> float:
        """Seconds until message `key` (from `number`) may be sent; 0 means send it now.

        A positive answer reserves that time for `key`: ask again then and the answer is 0.
        """
        reserved = self._reserved.get(key)
        if reserved is not None:
            if reserved <= now + self.tolerance:
                del self._reserved[key]
                return 0.0
            return reserved - now
        gap = self.gaps.get(number, self.number_gap)
        if not gap and not self.overall_gap:
            return 0.0
        at = max(now, self._next_for_number.get(number, now), self._next_overall)
        if gap:
            self._next_for_number[number] = at + gap
        if self.overall_gap:
            self._next_overall = at + self.overall_gap
        if at <= now:
            return 0.0
        # past max_reservations a message whose reservation was never used (it was refused
        # meanwhile) is forgotten, oldest first: a later message can only wait one slot more
        self._reserved[key] = at
        return at - now

    def set_rate(self, number: str, rate: float) -> None:
        """From now on `number` sends at most `rate` messages per second (a learned limit)."""
        if rate > 0:
            self.gaps[number] = 1.0 / rate

    def rate_of(self, number: str) -> float | None:
        """`number`'s messages per second now (None: no limit of its own)."""
        gap = self.gaps.get(number, self.number_gap)
        return 1.0 / gap if gap else None

    def release(self, key: str) -> None:
        """Forget `key`'s reservation (it will not be sent)."""
        self._reserved.pop(key, None)
