"""The sender: submits outbox rows to the gateway once their not-before time has come.

Rows are marked `sending` (committed) before they are submitted and `sent` with the gateway's id
after, so a crash in between leaves rows whose outcome is unknown: on start they are reconciled
with the gateway, never blindly resent.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Awaitable, Callable

import trio

from ..errors import GatewayError, GatewayOutcomeUnknown, GatewayRetryLater
from ..foundation.metrics import Metrics
from ..foundation.phone import mask
from ..gateways import Gateway, OutboundMessage
from ..store import MarkOutbox, OutboxRow, Requeue, Store, StoreClosed
from .clock import WallClock

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, *, store: Store, gateway: Gateway, clock: WallClock, metrics: Metrics,
                 batch_max: int = 500, hold: Hold | None = None):
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.metrics = metrics
        self.batch_max = batch_max
        self._heap: list[tuple[float, int, int, OutboxRow]] = []
        self._tiebreak = 0
        self._wakeup = trio.Event()
        self._queued: set[str] = set()
        self._retrying: dict[int, tuple[str, float, int]] = {}
        """Per conversation, its earliest reply waiting to be tried again (id, time, position):
        later replies of the conversation wait for it, so they never overtake it."""
        self.hold = hold
        """Campaign texts pass through this just before they go out: one whose window (the
        recipient's local hours) has closed meanwhile comes back with a later not-before."""
        self.opted_out: set[str] = set()
        """Numbers that opted out: nothing but a confirmation is ever sent to them."""

    def __len__(self) -> int:
        return len(self._heap)

    def set_opt_out(self, number: str, opted_out: bool) -> None:
        if opted_out:
            if number not in self.opted_out:
                self.metrics.opt_outs.inc()
            self.opted_out.add(number)
        else:
            self.opted_out.discard(number)

    def enqueue(self, rows: list[OutboxRow]) -> None:
        """Schedule committed outbox rows. Never blocks."""
        for row in rows:
            if row.id in self._queued:
                continue  # already scheduled (recovery can meet a row an actor just made)
            self._queued.add(row.id)
            waiting = self._retrying.get(row.conversation_id)
            if waiting is not None and row.not_before < waiting[1]:
                row.not_before = waiting[1]  # never before an earlier reply sent again later
            self._tiebreak += 1
            heapq.heappush(self._heap, (row.not_before, row.position, self._tiebreak, row))
        self.metrics.outbox_depth.set(len(self._heap))
        if rows:
            self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        task_status.started()
        heap = self._heap
        while True:
            if not heap:
                await self._wait(None)
                continue
            now = self.clock.now()
            if heap[0][0] > now:
                await self._wait(heap[0][0])
                continue
            batch: list[OutboxRow] = []
            while heap and heap[0][0] <= now and len(batch) < self.batch_max:
                batch.append(heapq.heappop(heap)[3])
            await self._send_batch(batch)
            self.metrics.outbox_depth.set(len(heap))
            await trio.lowlevel.checkpoint()

    def _forget(self, row: OutboxRow) -> None:
        self._queued.discard(row.id)

    async def _wait(self, until: float | None) -> None:
        self._wakeup = trio.Event()
        if until is None:
            await self._wakeup.wait()
        else:
            with trio.move_on_at(self.clock.deadline(until)):
                await self._wakeup.wait()

    async def _send_batch(self, batch: list[OutboxRow]) -> None:
        if self._retrying:
            for row in batch:  # a conversation's retried reply is going out again
                waiting = self._retrying.get(row.conversation_id)
                if waiting is not None and waiting[0] == row.id:
                    del self._retrying[row.conversation_id]
        if self.hold is not None and any(row.kind == "campaign" for row in batch):
            batch = await self._hold_campaign_texts(batch)
            if not batch:
                return
        refused = [row for row in batch
                   if row.their_number in self.opted_out and row.kind != "confirmation"]
        if refused:  # the opt-out is enforced here, where every message goes out
            self.metrics.refused.inc(len(refused))
            await self.store.call(MarkOutbox([row.id for row in refused], "refused",
                                             now=self.clock.now(), error="opted out"))
            for row in refused:
                self._forget(row)
            batch = [row for row in batch if row.their_number not in self.opted_out
                     or row.kind == "confirmation"]
            if not batch:
                return
        ids = [row.id for row in batch]
        try:
            await self.store.call(MarkOutbox(ids, "sending", now=self.clock.now()))
        except trio.Cancelled:  # shutdown: the mark may be committed, nothing was submitted
            await self._requeue_at_shutdown(ids)
            raise
        # Replies of one conversation go out in order; different conversations may overlap
        # when the gateway allows several submits in flight (an SMPP window).
        groups: dict[int, list[OutboxRow]] = {}
        for row in batch:
            groups.setdefault(row.conversation_id, []).append(row)
        outcome = _BatchOutcome()
        try:
            if self.gateway.max_in_flight <= 1 or len(groups) == 1:
                for rows in groups.values():
                    await self._submit_in_order(rows, outcome)
            else:
                async with trio.open_nursery() as nursery:
                    for rows in groups.values():
                        nursery.start_soon(self._submit_in_order, rows, outcome)
        finally:
            # also at shutdown: what the gateway already answered is recorded
            with trio.CancelScope(shield=True):
                await self._record(outcome)

    async def _record(self, outcome: _BatchOutcome) -> None:
        now = self.clock.now()
        if outcome.sent_ids:
            self.metrics.messages_out.inc(len(outcome.sent_ids))
            await self.store.post(MarkOutbox(outcome.sent_ids, "sent", now=now,
                                             gateway_ids=outcome.gateway_ids))
        for status, rows_errors in (("failed", outcome.failed), ("unknown", outcome.unknown)):
            for row, error in rows_errors:
                await self.store.post(MarkOutbox([row.id], status, now=now, error=error))
        if outcome.retry:
            await self.store.call(Requeue([row.id for row, _ in outcome.retry], now=now))
            for row, after in outcome.retry:
                row.not_before = now + after
                first = self._retrying.get(row.conversation_id)
                if first is None or row.position < first[2]:
                    self._retrying[row.conversation_id] = (row.id, row.not_before, row.position)
            self.enqueue([row for row, _ in outcome.retry])

    async def _submit_in_order(self, rows: list[OutboxRow], outcome: _BatchOutcome) -> None:
        for index, row in enumerate(rows):
            message = OutboundMessage(outbox_id=row.id, our_number=row.our_number,
                                      their_number=row.their_number, text=row.body)
            try:
                gateway_id = await self.gateway.submit(message)
            except trio.Cancelled:
                # Shutdown. Rows that never reached the network go back to the queue; one
                # that may have is left 'sending', to be reconciled with the gateway on start.
                first = index + 1 if self.gateway.may_have_sent(row.id) else index
                await self._requeue_at_shutdown([r.id for r in rows[first:]])
                raise
            except GatewayRetryLater as exc:
                # Not accepted: try again later, and keep this conversation's order.
                for later in rows[index:]:
                    outcome.retry.append((later, exc.retry_after))
                    self._forget(later)
                return
            except GatewayOutcomeUnknown as exc:
                log.warning("outcome unknown for outbox row %s to %s: %s (not resent)",
                            row.id, mask(row.their_number), exc)
                outcome.unknown.append((row, str(exc)))
            except GatewayError as exc:
                log.warning("gateway refused outbox row %s to %s: %s", row.id,
                            mask(row.their_number), exc)
                self.metrics.messages_out_failed.inc()
                outcome.failed.append((row, str(exc)))
            else:
                outcome.sent_ids.append(row.id)
                outcome.gateway_ids.append(gateway_id)
            self._forget(row)


    async def _hold_campaign_texts(self, batch: list[OutboxRow]) -> list[OutboxRow]:
        """A campaign text delayed past its window (throttling, an outage) waits for the
        next opening instead of reaching someone at night."""
        assert self.hold is not None
        await self.hold([row for row in batch if row.kind == "campaign"])  # moves not_before
        now = self.clock.now()
        later = [row for row in batch if row.kind == "campaign" and row.not_before > now]
        if not later:
            return batch
        for row in later:
            self._forget(row)
        self.enqueue(later)
        waiting = {row.id for row in later}
        return [row for row in batch if row.id not in waiting]

    async def _requeue_at_shutdown(self, ids: list[str]) -> None:
        if not ids:
            return
        with trio.CancelScope(shield=True):  # the writer serves until the server closes it
            try:
                await self.store.call(Requeue(ids, now=self.clock.now()))
            except StoreClosed:
                log.warning("%d replies stay marked 'sending' (the store closed first); they "
                            "are reconciled with the gateway on the next start", len(ids))


Hold = Callable[[list[OutboxRow]], Awaitable[list[OutboxRow]]]


class _BatchOutcome:
    __slots__ = ("failed", "gateway_ids", "retry", "sent_ids", "unknown")

    def __init__(self) -> None:
        self.sent_ids: list[str] = []
        self.gateway_ids: list[str | None] = []
        self.failed: list[tuple[OutboxRow, str]] = []
        self.unknown: list[tuple[OutboxRow, str]] = []
        self.retry: list[tuple[OutboxRow, float]] = []
