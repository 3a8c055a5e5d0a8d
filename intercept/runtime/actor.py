"""`ConversationActor`: one trio task per live conversation.

The actor owns its inbox, runs the engine on each event in order, commits the new state and the
replies together, hands the replies to the sender, and waits for its next message or timer. When
it has had nothing to do for a while it hibernates: the task ends and the state stays in the
store. An exception is caught at the actor boundary: the conversation restarts from its last
committed state, or is parked after `max_crashes` crashes in a row.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, NamedTuple

import msgspec
import trio

from .. import optout
from ..engine import (
    ConversationState,
    Effect,
    End,
    Event,
    HandOff,
    Lookup,
    LookupResult,
    Machine,
    Message,
    OptIn,
    OptOut,
    Resume,
    Send,
    Start,
    Tag,
    TimerFired,
    Transition,
)
from ..engine.rng import seed_from
from ..phone import mask
from ..store import CommitStep, Load, OutboxRow, SetConversationStatus, StoreClosed
from ..store.faults import StoreCorrupt, StoreUnavailable
from .inbox import Inbox

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger(__name__)

STORE_ERRORS = (StoreUnavailable, StoreCorrupt, StoreClosed)
"""Errors of the store, not of the conversation: never counted toward `max_crashes`."""

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(ConversationState).decode


class Inbound(NamedTuple):
    """An inbound message as routed to an actor (already committed to the store)."""

    conv_seq: int
    text: str
    media: tuple[str, ...] = ()
    received_at: float = 0.0


class ActorHandle:
    """What the router keeps for a live actor."""

    __slots__ = ("conversation_id", "inbox", "overflowed")

    def __init__(self, conversation_id: int, inbox: Inbox[Inbound]):
        self.conversation_id = conversation_id
        self.inbox = inbox
        self.overflowed = False


class Parked(Exception):
    """The conversation cannot run (unknown scenario version, too many crashes)."""


class ConversationActor:
    __slots__ = ("crashes", "handle", "last_not_before", "lookup", "lookup_result", "machine",
                 "operator", "our", "pending", "processed", "resume", "router", "state", "their")

    def __init__(self, router: Router, handle: ActorHandle):
        self.router = router
        self.handle = handle
        self.crashes = 0
        self.pending: dict[int, Inbound] = {}
        self.lookup: str | None = None
        self.lookup_result: LookupResult | None = None
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
        router = self.router
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
                        router.metrics.conversations_parked.inc()
                    return
                except StoreUnavailable as exc:
                    # not the conversation's fault: start again from the store, later
                    log.warning("conversation %d waits for the store: %s", self.conversation_id,
                                exc)
                    store_waits += 1
                    await trio.sleep(min(30.0, 0.5 * 2 ** min(store_waits, 6)))
                except STORE_ERRORS as exc:
                    log.warning("conversation %d stops, its work left in the store: %s",
                                self.conversation_id, exc)
                    return
                except Exception as exc:
                    self.crashes += 1
                    router.metrics.actor_crashes.inc()
                    log.error("conversation %d (%s) crashed (%d in a row): %s: %s",
                              self.conversation_id, mask(getattr(self, "their", "") or ""),
                              self.crashes, type(exc).__name__, exc,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    status = "parked" if self.crashes >= router.max_crashes else "active"
                    if not await self._set_status(status):
                        return
                    if status == "parked":
                        router.metrics.conversations_parked.inc()
                        log.error("conversation %d parked after %d crashes in a row",
                                  self.conversation_id, self.crashes)
                        return
                    router.metrics.actor_restarts.inc()
        finally:
            router.retire(self.handle, timer_at)

    async def _set_status(self, status: str) -> bool:
        """Record a crash or a parking; False (logged, never raised) when the store cannot."""
        router = self.router
        try:
            await router.store.call(SetConversationStatus(
                conversation_id=self.conversation_id, status=status, crashes=self.crashes,
                now=router.clock.now()))
        except Exception as exc:  # the crash path never raises out of the supervisor
            log.error("conversation %d: cannot record it as %s: %s: %s; it is retried from "
                      "its last committed state on the next start", self.conversation_id,
                      status, type(exc).__name__, exc)
            return False
        return True

    async def _load(self) -> bool:
        """Read the committed state; False if there is nothing this actor can run."""
        router = self.router
        loaded = await router.store.call(Load(self.conversation_id))
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
            machine = router.registry.get(state.scenario, state.version)
            if machine is None:
                raise Parked(f"scenario {state.scenario!r} version {state.version} is not loaded")
        else:
            number = router.config.number(self.our)
            if number is None:
                router.metrics.unrouted.inc(len(self.pending))
                log.warning("no number %s in the config: conversation %d waits unprocessed",
                            mask(self.our), self.conversation_id)
                return False
            machine = router.registry.current(number.scenario)
            if machine is None:
                raise Parked(f"scenario {number.scenario!r} is not loaded")
            state = machine.new_state(seed=seed_from(f"{self.conversation_id}"),
                                      context=router.config.context_for(number))
        self.machine: Machine = machine
        self.state: ConversationState = state
        return True

    async def _live(self) -> float | None:
        """Process events until idle; return the pending timer (Unix time) when hibernating."""
        router = self.router
        if not await self._load():
            return None
        inbox = self.handle.inbox
        hibernate_after = router.hibernate_after
        clock = router.clock
        while True:
            self._drain_inbox()
            if self.handle.overflowed:
                self.handle.overflowed = False
                if not await self._load():
                    return None
                continue
            if self.lookup is not None and self.lookup_result is None:
                self.lookup_result = await router.lookups.lookup(self.lookup, self.their,
                                                                 self.our)
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
            if wake_at != _NEVER:
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
            if not self.pending and not self.handle.overflowed:
                return timer_at  # idle: hibernate

    def _opt_out_guard(self, text: str, effects: list[Effect], paused: bool) -> list[Effect]:
        """STOP, START and HELP work in every scenario: when the engine did not handle the
        keyword, the runtime does, with the configured texts (HELP is left to the advocate in
        a handed-off conversation)."""
        kind = optout.keyword(text)
        if kind is None:
            return effects
        texts = self.router.config.optout
        if kind == "opt_out" and not any(isinstance(e, OptOut) for e in effects):
            return [OptOut(texts.confirmation), *effects]
        if kind == "opt_in" and not any(isinstance(e, OptIn) for e in effects):
            return [OptIn(texts.opt_in_confirmation), *effects]
        if kind == "help" and not paused and not any(isinstance(e, Send) for e in effects):
            return [*effects, Send(texts.help)]
        return effects

    def _drain_inbox(self) -> None:
        inbox = self.handle.inbox
        while inbox:
            item = inbox.get_nowait()
            if item.conv_seq > self.processed:
                self.pending[item.conv_seq] = item

    def _ready_events(self, now: float) -> tuple[list[tuple[Event, str]], int, float]:
        """The events to step now, the last message they consume, and when to look again.

        Consecutive messages wait for the scenario's quiet period (message merging), then go
        to the engine as one message.
        """
        state = self.state
        events: list[tuple[Event, str]] = []
        if not state.started:
            events.append((Start(), ""))
        if self.lookup_result is not None:
            events.append((self.lookup_result, ""))
        if self.resume and state.paused:
            events.append((Resume(), ""))
        processed = self.processed
        ready: list[Inbound] = []
        while processed + 1 + len(ready) in self.pending:
            ready.append(self.pending[processed + 1 + len(ready)])
        wake_at = _NEVER
        if self.operator:
            # A human has the conversation: messages are recorded as seen, the bot is silent.
            if ready:
                processed = ready[-1].conv_seq
            return events, processed, wake_at
        if ready:
            # merging is human-like timing too: off with the delays (`--fast`, tests)
            window = (self.machine.merge_window(state)
                      if state.started and self.router.delays.enabled else 0.0)
            quiet_until = ready[-1].received_at + window
            if window <= 0:
                events.extend((Message(m.text, m.media), m.text) for m in ready)
                processed = ready[-1].conv_seq
            elif now >= quiet_until:
                text = "\n".join(m.text for m in ready)
                media = tuple(url for m in ready for url in m.media)
                events.append((Message(text, media), text))
                processed = ready[-1].conv_seq
            else:
                wake_at = quiet_until
        if not events and state.timer_at is not None and now >= state.timer_at:
            events.append((TimerFired(), ""))
        return events, processed, wake_at

    async def _work(self) -> float | None:
        """Step every event that is ready and commit once; None if a step was taken, else the
        Unix time at which waiting messages become ready (`_NEVER` if none wait)."""
        router = self.router
        now = router.clock.now()
        events, processed, wake_at = self._ready_events(now)
        if not events and processed == self.processed and not self.resume:
            return wake_at
        for seq in range(self.processed + 1, processed + 1):
            del self.pending[seq]
        state = self.state
        machine = self.machine
        metrics = router.metrics
        rows: list[OutboxRow] = []
        tags: list[str] = []
        transitions: list[tuple[int, str, str, str]] = []
        outcome = None
        opt_out: bool | None = None
        lookup: str | None = None
        handed_off = False
        is_out = self.their in router.sender.opted_out
        router.busy += 1
        try:
            for event, inbound_text in events:
                started = time.perf_counter()
                prior = state
                state, effects = machine.step(state, event, now)
                metrics.engine_step_seconds.observe(time.perf_counter() - started)
                if isinstance(event, Start):
                    metrics.conversations_started.inc()
                key = f"{self.conversation_id}.{state.turn}"
                sends: list[tuple[str, float, float, str]] = []
                if isinstance(event, Message):
                    handled = any(isinstance(e, OptOut) for e in effects)
                    effects = self._opt_out_guard(event.text, effects, state.paused)
                    if not handled and effects and isinstance(effects[0], OptOut):
                        # The scenario did not take this for STOP ("stop pls"), so its reading
                        # of the message is dropped: an opted-out person is never handed off,
                        # tagged or answered because of it. Only the turn advances.
                        state = msgspec.structs.replace(prior, turn=state.turn)
                        effects = [effects[0]]
                for effect in effects:
                    if isinstance(effect, Send):
                        sends.append((effect.text, effect.delay_scale, effect.extra, "reply"))
                    elif isinstance(effect, Transition):
                        transitions.append(
                            (state.turn, effect.source, effect.target, effect.trigger))
                    elif isinstance(effect, Tag):
                        tags.append(effect.name)
                    elif isinstance(effect, OptOut | OptIn):
                        opting_out = isinstance(effect, OptOut)
                        if opting_out != is_out and effect.confirmation:
                            # one confirmation per change: a second STOP gets no answer
                            sends.append((effect.confirmation, 1.0, 0.0, "confirmation"))
                        opt_out = is_out = opting_out
                    elif isinstance(effect, Lookup):
                        lookup = effect.kind
                    elif isinstance(effect, HandOff):
                        handed_off = True
                    elif isinstance(effect, End):
                        outcome = effect.outcome
                if sends:
                    offsets = router.delays.reply_offsets(
                        inbound_text, [(t, scale, extra) for t, scale, extra, _ in sends], key)
                    for i, ((text, _, _, kind), offset) in enumerate(
                            zip(sends, offsets, strict=True)):
                        not_before = max(now + offset, self.last_not_before)
                        self.last_not_before = not_before
                        rows.append(OutboxRow(
                            id=f"{key}.{i}", conversation_id=self.conversation_id,
                            position=state.turn * 100 + i, our_number=self.our,
                            their_number=self.their, body=text, not_before=not_before,
                            kind=kind))
            status = ("ended" if state.ended else "handed_off" if state.paused else "active")
            await router.store.call(CommitStep(
                conversation_id=self.conversation_id, scenario=state.scenario,
                version=state.version, status=status, outcome=state.outcome,
                state=_encode(state).decode(), processed_count=processed,
                timer_at=state.timer_at, crashes=0, outbox=rows, now=now, turn=state.turn,
                tags=tags, transitions=transitions, opt_out=opt_out, their_number=self.their,
                pending_lookup=lookup, clear_resume=self.resume))
        finally:
            router.busy -= 1
        self.state = state
        self.processed = processed
        self.crashes = 0
        self.lookup = lookup
        self.lookup_result = None
        self.resume = False
        if opt_out is not None:
            router.sender.set_opt_out(self.their, opt_out)
        router.sender.enqueue(rows)
        router.record(state.scenario, transitions, outcome, handed_off)
        return None


_NEVER = float("inf")
