"""`OptOuts`: the one authority on who may be texted.

Every path that learns of an opt-out tells it (a turn's STOP or START, the carrier's refusal,
the store at start-up) and every path about to text someone asks it (the sender, campaigns,
an operator's take-over). Which words opt out stays in `intercept/engine/optout.py` (pure); what the
person chose is kept here in memory and, for changes that do not come with a turn's commit,
in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..foundation.phone import mask
from ..store import OutboxRow, SetOptOut

if TYPE_CHECKING:
    from ..foundation.metrics import Metrics
    from ..store import Store

log = logging.getLogger(__name__)


class OptOuts:
    """Numbers that opted out: nothing but the single confirmation is ever sent to them."""

    def __init__(self, *, store: Store, metrics: Metrics, now: Callable[[], float]):
        self._store = store
        self._metrics = metrics
        self._now = now
        self._numbers: set[str] = set()

    def __contains__(self, number: object) -> bool:
        return number in self._numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def load(self, numbers: Iterable[str]) -> None:
        """The numbers the store holds as opted out (at start-up; each is counted, so the
        counter starts from what the store knows)."""
        for number in numbers:
            self.record(number, True)

    def record(self, number: str, opted_out: bool) -> None:
        """A committed change (a turn's STOP or START): remember it, count an opt-out."""
        if opted_out:
            if number not in self._numbers:
                self._metrics.opt_outs.inc()
            self._numbers.add(number)
        else:
            self._numbers.discard(number)

    def may_send(self, row: OutboxRow) -> bool:
        """Whether `row` may go out: never to an opted-out number, except its confirmation."""
        return row.kind == "confirmation" or row.their_number not in self._numbers

    async def carrier(self, their_number: str) -> None:
        """The network says this number opted out: commit it, and never text it again (until
        it opts back in)."""
        changed = await self._store.call(SetOptOut(their_number, True, now=self._now()))
        self.record(their_number, True)
        if changed:
            log.info("%s opted out at the carrier: nothing more will be sent to it",
                     mask(their_number))
