"""`ConversationActor`: one trio task per live conversation.

The actor does the I/O of a conversation: it loads it, waits for its messages and timers, asks
`take_turn` (runtime/turn.py, pure) what the ready events become, commits the new state and the
replies together, and hands the replies to the sender. It is handed its `Services` by the router
and never reaches back into it. When
it has had nothing to do for a while it hibernates: the task ends and the state stays in the
store. An exception is caught at the actor boundary: the conversation restarts from its last
committed state, or is parked after `max_crashes` crashes in a row.
"""

from __future__ import annotations

import logging

import msgspec
import trio

from ..engine import ConversationState, LookupResult, Machine, Webhook, WebhookResult
from ..engine.rng import seed_from
from ..foundation.backoff import backoff
from ..foundation.phone import mask
from ..store import Load, SetConversationStatus, StoreClosed
from ..store.faults import StoreCorrupt, StoreUnavailable
from .inbox import Inbox
from .services import Services
from .turn import NEVER, WEBHOOK_MARK, Inbound, TurnInput, take_turn

log = logging.getLogger(__name__)

STORE_ERRORS = (StoreUnavailable, StoreCorrupt, StoreClosed)
"""Errors of the store, not of the conversation: never counted toward `max_crashes`."""

_decode_state = msgspec.json.Decoder(ConversationState).decode

__all__ = ["STORE_ERRORS", "ActorHandle", "ConversationActor", "Inbound", "Parked"]


class ActorHandle:
    """What the router keeps for a live actor."""

    __slots__ = ("conversation_id", "inbox", "overflowed", "stale")

    def __init__(self, conversation_id: int, inbox: Inbox[Inbound]):
        self.conversation_id = conversation_id
        self.inbox = inbox
        self.overflowed = False
        """The inbox was full: messages wait in the store only."""
        self.stale = False
        """The conversation changed in the store (an operator): load it again."""

    @property
    def must_reload(self) -> bool:
        """Whether the actor has to re-read its conversation from the store."""
        return self.overflowed or self.stale

    def reloaded(self) -> None:
        self.overflowed = self.stale = False


class Parked(Exception):
    """The conversation cannot run (unknown scenario version, too many crashes)."""


class ConversationActor:
    __slots__ = ("crashes", "handle", "last_not_before", "lookup", "lookup_result", "machine",
                 "operator", "our", "pending", "processed", "resume", "services", "state", "their",
                 "webhook", "webhook_result")

    def __init__(self, services: Services, handle: ActorHandle):
        self.services = services
        self.handle = handle
        self.crashes = 0
        self.pending: dict[int, Inbound] = {}
        self.lookup: str | None = None
        self.lookup_result: LookupResult | None = None
        self.webhook: Webhook | None = None
        self.webhook_result: WebhookResult | None = None
        self.operator = False
        self.resume = False

    @property
    def conversation_id(self) -> int:
        return self.handle.conversation_id

    async def run(self) -> None:
        """The actor boundary: contain crashes, restart from the store or park.

        A store error is not the conversation's fault and never counts as a crash: the actor
        starts again from the store later (`StoreUnavailable`), or stops with its work left
        in the store (closed on shutdown, or a damaged file).
        """
        services = self.services
        timer_at = None
        store_waits = 0
        try:
            while True:
                try:
                    timer_at = await self._live()
                    return
                except Parked as exc:
                    log.error("conversation %d parked: %s", self.conversation_id, exc)
                    if await self._set_status("parked"):
                        services.metrics.conversations_parked.inc()
                    return
                except StoreUnavailable as exc:
                    # not the conversation's fault: start again from the store, later
                    log.warning("conversation %d waits for the store: %s", self.conversation_id,
                                exc)
                    store_waits += 1
                    await trio.sleep(backoff(store_waits, base=0.5, cap=30.0,
                                             jitter=(1.0, 1.0), max_exponent=6))
                except STORE_ERRORS as exc:
                    log.warning("conversation %d stops, its work left in the store: %s",
                                self.conversation_id, exc)
                    return
                except Exception as exc:
                    self.crashes += 1
                    services.metrics.actor_crashes.inc()
                    log.error("conversation %d (%s) crashed (%d in a row): %s: %s",
                              self.conversation_id, mask(getattr(self, "their", "") or ""),
                              self.crashes, type(exc).__name__, exc,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    status = "parked" if self.crashes >= services.max_crashes else "active"
                    if not await self._set_status(status):
                        return
                    if status == "parked":
                        services.metrics.conversations_parked.inc()
                        log.error("conversation %d parked after %d crashes in a row",
                                  self.conversation_id, self.crashes)
                        return
                    services.metrics.actor_restarts.inc()
        finally:
            services.retire(self.handle, timer_at)

    async def _set_status(self, status: str) -> bool:
        """Record a crash or a parking; False (logged, never raised) when the store cannot."""
        services = self.services
        try:
            await services.store.call(SetConversationStatus(
                conversation_id=self.conversation_id, status=status, crashes=self.crashes,
                now=services.clock.now()))
        except Exception as exc:  # the crash path never raises out of the supervisor
            log.error("conversation %d: cannot record it as %s: %s: %s; it is retried from "
                      "its last committed state on the next start", self.conversation_id,
                      status, type(exc).__name__, exc)
            return False
        return True

    async def _load(self) -> bool:
        """Read the committed state; False if there is nothing this actor can run."""
        services = self.services
        loaded = await services.store.call(Load(self.conversation_id))
        if loaded is None or loaded.status == "parked":
            return False
        self.our, self.their = loaded.our_number, loaded.their_number
        self.processed = loaded.processed_count
        self.crashes = max(self.crashes, loaded.crashes)
        self.last_not_before = loaded.last_not_before
        self.pending = {seq: Inbound(seq, text, media, at)
                        for seq, text, media, at in loaded.pending}
        self.lookup = loaded.pending_lookup
        self.lookup_result = None
        self.operator = loaded.operator
        self.resume = loaded.resume
        if loaded.state:
            state = _decode_state(loaded.state)
            machine = services.registry.get(state.scenario, state.version)
            if machine is None:
                raise Parked(f"scenario {state.scenario!r} version {state.version} is not loaded")
        else:
            number = services.config.number(self.our)
            if number is None:
                services.metrics.unrouted.inc(len(self.pending))
                log.warning("no number %s in the config: conversation %d waits unprocessed",
                            mask(self.our), self.conversation_id)
                return False
            machine = services.registry.current(number.scenario)
            if machine is None:
                raise Parked(f"scenario {number.scenario!r} is not loaded")
            state = machine.new_state(seed=seed_from(f"{self.conversation_id}"),
                                      context=services.config.context_for(number))
        self.machine: Machine = machine
        self.state: ConversationState = state
        self.webhook = self.webhook_result = None
        if self.lookup is not None and self.lookup.startswith(WEBHOOK_MARK):
            # a call a restart interrupted: made again, with the same payload and key
            call = machine.pending_webhook(state)
            if call is not None and call.call == self.lookup[len(WEBHOOK_MARK):]:
                self.webhook = call
            else:
                log.warning("conversation %d: its pending webhook %s is no longer called by "
                            "state %r; dropped", self.conversation_id,
                            self.lookup[len(WEBHOOK_MARK):], state.node)
            self.lookup = None
        return True

    async def _live(self) -> float | None:
        """Process events until idle; return the pending timer (Unix time) when hibernating."""
        services = self.services
        if not await self._load():
            return None
        inbox = self.handle.inbox
        hibernate_after = services.hibernate_after
        clock = services.clock
        while True:
            self._drain_inbox()
            if self.handle.must_reload:
                self.handle.reloaded()
                if not await self._load():
                    return None
                continue
            if self.lookup is not None and self.lookup_result is None:
                self.lookup_result = await services.lookups.lookup(self.lookup, self.their,
                                                                 self.our)
                continue
            if self.webhook is not None and self.webhook_result is None:
                # the key names the turn that asked: the same on a retry and after a restart
                self.webhook_result = await services.webhooks.result(
                    self.webhook, f"{self.conversation_id}.{self.state.turn}")
                continue
            wake_at = await self._work()
            if wake_at is None:
                continue  # a step was taken: look again
            if self.state.ended and not self.pending:
                return None
            deadline = trio.current_time() + hibernate_after
            timer_at = self.state.timer_at
            if timer_at is not None:
                deadline = min(deadline, clock.deadline(timer_at))
            if wake_at != NEVER:
                deadline = min(deadline, clock.deadline(wake_at))
            with trio.move_on_at(deadline):
                item = await inbox.get()
                if item.conv_seq > self.processed:
                    self.pending[item.conv_seq] = item
                continue
            now = clock.now()
            if (timer_at is not None and now >= timer_at) or wake_at <= now:
                continue
            self._drain_inbox()
            if not self.pending and not self.handle.must_reload:
                return timer_at  # idle: hibernate

    def _drain_inbox(self) -> None:
        inbox = self.handle.inbox
        while inbox:
            item = inbox.get_nowait()
            if item.conv_seq > self.processed:
                self.pending[item.conv_seq] = item

    async def _work(self) -> float | None:
        """Take the turn that is ready and commit it; None if a step was taken, else the Unix
        time at which waiting messages become ready (`NEVER` if none wait)."""
        services = self.services
        now = services.clock.now()
        turn = take_turn(TurnInput(
            conversation_id=self.conversation_id, our=self.our, their=self.their,
            machine=self.machine, state=self.state, processed=self.processed,
            pending=self.pending, last_not_before=self.last_not_before,
            opted_out=self.their in services.optouts, operator=self.operator,
            resume=self.resume, lookup_result=self.lookup_result,
            webhook_result=self.webhook_result), now, services.rules)
        if not turn.taken:
            return turn.wake_at
        for seq in range(self.processed + 1, turn.processed + 1):
            del self.pending[seq]
        metrics = services.metrics
        for seconds in turn.step_seconds:
            metrics.engine_step_seconds.observe(seconds)
        if turn.started:
            metrics.conversations_started.inc()
        assert turn.commit is not None
        services.busy.count += 1
        try:
            await services.store.call(turn.commit)
        finally:
            services.busy.count -= 1
        self.state = turn.state
        self.processed = turn.processed
        self.last_not_before = turn.last_not_before
        self.crashes = 0
        self.lookup = turn.lookup
        self.lookup_result = None
        self.webhook = turn.webhook
        self.webhook_result = None
        self.resume = False
        if turn.opt_out is not None:
            services.optouts.record(self.their, turn.opt_out)
        services.enqueue(turn.commit.outbox)
        services.record(turn.state.scenario, turn.commit.transitions, turn.outcome,
                        turn.handed_off)
        return None
