"""Offline enrichment of every new buyer number, off the message path.

`Enricher.run()` waits to be woken (`wake()`: the server calls it when a message opens a new
conversation), reads the buyer numbers without metadata among the conversations it has not
looked at yet (by id, so each pass reads only new rows), computes their
`phonenumbers` metadata (valid, type, region, place, time zone, carrier) in a worker thread
and stores it in the table ``number_info``; a message never waits for it. The first call
loads the geocoder and carrier data (~100 MB, seconds, holding the interpreter lock in ~0.25 s
pieces), unless the server loaded it before intake (`intercept serve` does:
`intercept.runtime.lookups.load_number_data`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import phonenumbers
import trio

from ..runtime.lookups import number_metadata
from ..store.evidence import NumberInfo, SaveNumberInfo, UnenrichedNumbers

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)

BATCH = 500


def enrich(numbers: list[str]) -> list[NumberInfo]:
    """Metadata of each number (slow on the first call of the process: it loads data)."""
    rows = []
    for number in numbers:
        try:
            fields = number_metadata(number)
        except phonenumbers.NumberParseException:
            fields = {"valid": "no"}
        rows.append(NumberInfo.from_fields(number, fields))
    return rows


class Enricher:
    """Fills ``number_info`` for buyer numbers. Run it in a nursery; `wake()` after new ones."""

    def __init__(self, *, store: Store, clock: Callable[[], float], threaded: bool = True):
        self.store, self.clock, self.threaded = store, clock, threaded
        self._wake = trio.Event()
        self.enriched = 0
        self._after = 0
        """The last conversation id looked at: each pass reads only newer ones."""

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        task_status.started()
        while True:
            self._wake = trio.Event()
            await self.catch_up()
            await self._wake.wait()

    async def catch_up(self) -> int:
        """Enrich every buyer number still without metadata; return how many were done."""
        done = 0
        while True:
            numbers, after = await self.store.call(UnenrichedNumbers(self._after, BATCH))
            if after == self._after:
                return done
            self._after = after
            if not numbers:
                continue
            if self.threaded:
                rows = await trio.to_thread.run_sync(enrich, numbers, abandon_on_cancel=True)
            else:
                rows = enrich(numbers)
            await self.store.call(SaveNumberInfo(rows, now=self.clock()))
            done += len(rows)
            self.enriched += len(rows)
            log.debug("enriched %d buyer numbers", len(rows))
