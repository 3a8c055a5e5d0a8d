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

from ..engine import ConversationState, End, Machine, Message, Send, Start, TimerFired
from ..engine.rng import seed_from
from ..phone import mask
from ..store import CommitStep, Load, OutboxRow, SetConversationStatus
from .inbox import Inbox

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(ConversationState).decode


class Inbound(NamedTuple):
    """An inbound message as routed to an actor (already committed to the store)."""

    conv_seq: int
    text: str
    media: tuple[str, ...] = ()


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
    __slots__ = ("crashes", "handle", "last_not_before", "machine", "our", "pending",
                 "processed", "router", "state", "their")

    def __init__(self, router: Router, handle: ActorHandle):
        self.router = router
        self.handle = handle
        self.crashes = 0
        self.pending: dict[int, Inbound] = {}

    @property
    def conversation_id(self) -> int:
        return self.handle.conversation_id

    async def run(self) -> None:
        """The actor boundary: contain crashes, restart from the store or park."""
        router = self.router
        timer_at = None
        try:
            while True:
                try:
                    timer_at = await self._live()
                    return
                except Parked as exc:
                    log.error("conversation %d parked: %s", self.conversation_id, exc)
                    await router.store.call(SetConversationStatus(
                        conversation_id=self.conversation_id, status="parked",
                        crashes=self.crashes, now=router.clock.now()))
                    router.metrics.conversations_parked.inc()
                    return
                except Exception as exc:
                    self.crashes += 1
                    router.metrics.actor_crashes.inc()
                    log.error("conversation %d (%s) crashed (%d in a row): %s: %s",
                              self.conversation_id, mask(getattr(self, "their", "") or ""),
                              self.crashes, type(exc).__name__, exc,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    status = "parked" if self.crashes >= router.max_crashes else "active"
                    await router.store.call(SetConversationStatus(
                        conversation_id=self.conversation_id, status=status,
                        crashes=self.crashes, now=router.clock.now()))
                    if status == "parked":
                        router.metrics.conversations_parked.inc()
                        log.error("conversation %d parked after %d crashes in a row",
                                  self.conversation_id, self.crashes)
                        return
                    router.metrics.actor_restarts.inc()
        finally:
            router.retire(self.handle, timer_at)

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
        self.pending = {seq: Inbound(seq, text, media) for seq, text, media in loaded.pending}
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
        while True:
            self._drain_inbox()
            if self.handle.overflowed:
                self.handle.overflowed = False
                if not await self._load():
                    return None
                continue
            if await self._work():
                continue
            if self.state.ended and not self.pending:
                return None
            deadline = trio.current_time() + hibernate_after
            timer_at = self.state.timer_at
            if timer_at is not None:
                deadline = min(deadline, router.clock.deadline(timer_at))
            with trio.move_on_at(deadline):
                item = await inbox.get()
                if item.conv_seq > self.processed:
                    self.pending[item.conv_seq] = item
                continue
            if timer_at is not None and router.clock.now() >= timer_at:
                continue
            self._drain_inbox()
            if not self.pending and not self.handle.overflowed:
                return timer_at  # idle: hibernate

    def _drain_inbox(self) -> None:
        inbox = self.handle.inbox
        while inbox:
            item = inbox.get_nowait()
            if item.conv_seq > self.processed:
                self.pending[item.conv_seq] = item

    async def _work(self) -> bool:
        """Step every event that is ready, commit once; False if nothing was ready."""
        router = self.router
        clock = router.clock
        now = clock.now()
        state = self.state
        machine = self.machine
        metrics = router.metrics
        events: list[tuple[Start | Message | TimerFired, str]] = []
        if not state.started:
            events.append((Start(), ""))
        processed = self.processed
        while processed + 1 in self.pending:
            processed += 1
            item = self.pending.pop(processed)
            events.append((Message(item.text, item.media), item.text))
        if not events and (state.timer_at is None or now < state.timer_at):
            return False
        if not events:
            events.append((TimerFired(), ""))
        rows: list[OutboxRow] = []
        outcome = None
        router.busy += 1
        try:
            for event, inbound_text in events:
                started = time.perf_counter()
                state, effects = machine.step(state, event, now)
                metrics.engine_step_seconds.observe(time.perf_counter() - started)
                if isinstance(event, Start):
                    metrics.conversations_started.inc()
                texts = [e.text for e in effects if isinstance(e, Send)]
                if texts:
                    key = f"{self.conversation_id}.{state.turn}"
                    offsets = router.delays.reply_offsets(inbound_text, texts, key)
                    for i, (text, offset) in enumerate(zip(texts, offsets, strict=True)):
                        not_before = max(now + offset, self.last_not_before)
                        self.last_not_before = not_before
                        rows.append(OutboxRow(
                            id=f"{key}.{i}", conversation_id=self.conversation_id,
                            position=state.turn * 100 + i, our_number=self.our,
                            their_number=self.their, body=text, not_before=not_before))
                for effect in effects:
                    if isinstance(effect, End):
                        outcome = effect.outcome
            await router.store.call(CommitStep(
                conversation_id=self.conversation_id, scenario=state.scenario,
                version=state.version, status="ended" if state.ended else "active",
                outcome=state.outcome, state=_encode(state).decode(), processed_count=processed,
                timer_at=state.timer_at, crashes=0, outbox=rows, now=now))
        finally:
            router.busy -= 1
        self.state = state
        self.processed = processed
        self.crashes = 0
        router.sender.enqueue(rows)
        if outcome is not None:
            router.ended(outcome)
        return True
