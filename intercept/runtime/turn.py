"""One turn of a conversation: what the events that are ready now become. Pure.

`take_turn` is the one place that decides what a conversation does with its waiting messages:
message merging (the scenario's quiet period), the engine steps, the STOP / START / HELP
override and its single confirmation, and the outbox rows with their deterministic ids, reply
times and the conversation's status. Plain data in, a `Turn` out: no I/O, no trio, no store
calls. The actor commits what it returns; campaigns, transcript tests and `scenario replay`
call it too, so what an author tests is what production sends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import NamedTuple

import msgspec

from ..config import OptOutConfig
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
    Webhook,
    WebhookResult,
    optout,
)
from ..foundation import languages
from ..store import CommitStep, FunnelMove, HandoffMade, OutboxRow
from .delays import DelayModel

NEVER = math.inf
"""`Turn.wake_at` when no message waits for its quiet period."""

_encode = msgspec.json.Encoder().encode


class Inbound(NamedTuple):
    """An inbound message as routed to an actor (already committed to the store)."""

    conv_seq: int
    text: str
    media: tuple[str, ...] = ()
    received_at: float = 0.0


class TurnRules(msgspec.Struct, frozen=True):
    """What a turn needs from the configuration."""

    optout: OptOutConfig = msgspec.field(default_factory=OptOutConfig)
    """The texts of the runtime's STOP / START / HELP answers."""
    delays: DelayModel = msgspec.field(default_factory=DelayModel)
    """Human-like reply times (the rows' not-before)."""
    merge: bool = True
    """Merge consecutive messages over the scenario's quiet period (off with `--fast`)."""
    identify: languages.Identify = languages.identify
    """Which declared language a text is in (for scenarios of several languages)."""
    words: Mapping[str, optout.Keyword] = msgspec.field(default_factory=dict)
    """The configured opt-out words of other languages (`OptOutConfig.words`)."""

    @classmethod
    def of(cls, texts: OptOutConfig, **rest: object) -> TurnRules:
        """Rules with `texts` and the words they configure."""
        return cls(optout=texts, words=texts.words(), **rest)  # type: ignore[arg-type]


class TurnInput(msgspec.Struct, frozen=True):
    """A conversation as the turn finds it (all of it plain data)."""

    conversation_id: int
    our: str
    their: str
    machine: Machine
    state: ConversationState
    processed: int = 0
    """The last inbound message (conv_seq) already stepped."""
    pending: Mapping[int, Inbound] = msgspec.field(default_factory=dict)
    """Inbound messages by conv_seq, possibly with gaps and already processed ones."""
    last_not_before: float = 0.0
    """The latest reply time already given: replies never overtake each other."""
    opted_out: bool = False
    operator: bool = False
    """A human has the conversation: messages are recorded as seen, the bot is silent."""
    resume: bool = False
    """An operator asked the bot to take over again (cleared by this turn's commit)."""
    resume_at: str = ""
    """The state the bot resumes at ("": where the scenario's handoff says)."""
    lookup_result: LookupResult | None = None
    webhook_result: WebhookResult | None = None
    """The answer of the webhook the last turn called (the actor made the call)."""


class Step(NamedTuple):
    """One engine step of a turn, after the opt-out override."""

    event: Event
    effects: tuple[Effect, ...]
    rows: tuple[OutboxRow, ...]
    """The texts this step sends, in order (replies and confirmations)."""


class Turn(msgspec.Struct, frozen=True):
    """What a turn became: the new state, what to commit and send, what to count."""

    taken: bool
    """False: nothing is ready (`wake_at` says when waiting messages will be)."""
    wake_at: float
    state: ConversationState
    processed: int
    last_not_before: float
    status: str
    """active, handed_off or ended."""
    steps: tuple[Step, ...] = ()
    rows: tuple[OutboxRow, ...] = ()
    tags: tuple[str, ...] = ()
    transitions: tuple[FunnelMove, ...] = ()
    """Every move between states, for the funnel."""
    outcome: str | None = None
    """The outcome of an `End` effect of this turn (counted once)."""
    opt_out: bool | None = None
    """The person's new opt-out status, None when unchanged."""
    lookup: str | None = None
    """The lookup the engine asked for (the actor runs it before the next turn)."""
    webhook: Webhook | None = None
    """The webhook the engine asked to call (the actor calls it before the next turn)."""
    handed_off: bool = False
    started: bool = False
    """The conversation started in this turn (count it)."""
    step_seconds: tuple[float, ...] = ()
    """How long each engine step took (metrics only)."""
    commit: CommitStep | None = None
    """The store write of the turn (None when not taken)."""


WEBHOOK_MARK = "webhook:"
"""How a pending webhook call is kept in the store's `pending_lookup` (a lookup kind never has
a colon): ``webhook:NAME``; its payload is made again from the committed state."""


def pending_mark(webhook: Webhook) -> str:
    """The store's record of a webhook call the actor has still to make."""
    return WEBHOOK_MARK + webhook.call


def status_of(state: ConversationState) -> str:
    """The stored status of a conversation in `state`."""
    return "ended" if state.ended else "handed_off" if state.paused else "active"


def optout_override(text: str, effects: list[Effect], paused: bool,
                    texts: OptOutConfig, *, language: str = "",
                    words: Mapping[str, optout.Keyword] | None = None) -> list[Effect]:
    """STOP, START and HELP work in every scenario: when the engine did not handle the
    keyword, the runtime does, with the configured texts in the conversation's `language`
    (HELP is left to the advocate in a handed-off conversation). `words` are the configured
    words of other languages."""
    kind = optout.keyword(text, words)
    if kind is None:
        return effects
    stopped, started, helped = texts.texts(language)
    if kind == "opt_out" and not any(isinstance(e, OptOut) for e in effects):
        return [OptOut(stopped), *effects]
    if kind == "opt_in" and not any(isinstance(e, OptIn) for e in effects):
        return [OptIn(started), *effects]
    if kind == "help" and not paused and not any(isinstance(e, Send) for e in effects):
        return [*effects, Send(helped)]
    return effects


def ready_events(conv: TurnInput, now: float, rules: TurnRules
                 ) -> tuple[list[tuple[Event, str]], int, float]:
    """The events to step now (with the inbound text each answers), the last message they
    consume, and when to look again.

    Consecutive messages wait for the scenario's quiet period (message merging), then go to
    the engine as one message.
    """
    state = conv.state
    events: list[tuple[Event, str]] = []
    if not state.started:
        events.append((Start(), ""))
    if conv.lookup_result is not None:
        events.append((conv.lookup_result, ""))
    if conv.webhook_result is not None:
        events.append((conv.webhook_result, ""))
    if conv.resume and state.paused:
        events.append((Resume(state=conv.resume_at), ""))
    processed = conv.processed
    pending = conv.pending
    ready: list[Inbound] = []
    while processed + 1 + len(ready) in pending:
        ready.append(pending[processed + 1 + len(ready)])
    wake_at = NEVER
    if conv.operator:
        if ready:
            processed = ready[-1].conv_seq
        return events, processed, wake_at
    if ready:
        # merging is human-like timing too: off with the delays (`--fast`, tests)
        window = conv.machine.merge_window(state) if state.started and rules.merge else 0.0
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


def take_turn(conv: TurnInput, now: float, rules: TurnRules) -> Turn:
    """Step every event of `conv` that is ready at `now` (Unix time) and say what it became.

    Raises what the engine raises (`EngineError`): the caller decides whether that is a crash
    (the actor) or a failed test (transcripts).
    """
    events, processed, wake_at = ready_events(conv, now, rules)
    state = conv.state
    if not events and processed == conv.processed and not conv.resume:
        return Turn(taken=False, wake_at=wake_at, state=state, processed=processed,
                    last_not_before=conv.last_not_before, status=status_of(state))
    machine = conv.machine
    cid = conv.conversation_id
    last_not_before = conv.last_not_before
    rows: list[OutboxRow] = []
    steps: list[Step] = []
    tags: list[str] = []
    transitions: list[FunnelMove] = []
    seconds: list[float] = []
    outcome = None
    opt_out: bool | None = None
    lookup: str | None = None
    webhook: Webhook | None = None
    handed_off = started = False
    handoff: HandoffMade | None = None
    is_out = conv.opted_out
    for event, inbound_text in events:
        begun = time.perf_counter()
        prior = state
        if isinstance(event, Message):
            sample = machine.language_sample(state, event.text)
            if sample is not None:
                language, confidence = rules.identify(sample, machine.languages)
                event = msgspec.structs.replace(event, language=language,
                                                confidence=confidence)
        state, effects = machine.step(state, event, now)
        seconds.append(time.perf_counter() - begun)
        if isinstance(event, Start):
            started = True
        key = f"{cid}.{state.turn}"
        sends: list[tuple[str, float, float, str]] = []
        if isinstance(event, Message):
            handled = any(isinstance(e, OptOut) for e in effects)
            effects = optout_override(event.text, effects, state.paused, rules.optout,
                                      language=state.vars.get("language", ""),
                                      words=rules.words)
            if not handled and effects and isinstance(effects[0], OptOut):
                # The scenario did not take this for STOP ("stop pls"), so its reading of the
                # message is dropped: an opted-out person is never handed off, tagged or
                # answered because of it. Only the turn advances.
                state = msgspec.structs.replace(prior, turn=state.turn)
                effects = [effects[0]]
        for effect in effects:
            if isinstance(effect, Send):
                sends.append((effect.text, effect.delay_scale, effect.extra, "reply"))
            elif isinstance(effect, Transition):
                transitions.append(FunnelMove(state.turn, effect.source, effect.target,
                                              effect.trigger))
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
            elif isinstance(effect, Webhook):
                webhook = effect
            elif isinstance(effect, HandOff):
                handed_off = True
                if handoff is None or effect.priority == "urgent":
                    handoff = HandoffMade(effect.priority, effect.reason)
            elif isinstance(effect, End):
                outcome = effect.outcome
        step_rows: list[OutboxRow] = []
        if sends:
            offsets = rules.delays.reply_offsets(
                inbound_text, [(t, scale, extra) for t, scale, extra, _ in sends], key)
            for i, ((text, _, _, kind), offset) in enumerate(zip(sends, offsets, strict=True)):
                not_before = max(now + offset, last_not_before)
                last_not_before = not_before
                step_rows.append(OutboxRow(
                    id=f"{key}.{i}", conversation_id=cid, position=state.turn * 100 + i,
                    our_number=conv.our, their_number=conv.their, body=text,
                    not_before=not_before, kind=kind))
        rows.extend(step_rows)
        steps.append(Step(event, tuple(effects), tuple(step_rows)))
    status = status_of(state)
    commit = CommitStep(
        conversation_id=cid, scenario=state.scenario, version=state.version, status=status,
        outcome=state.outcome, state=_encode(state).decode(), processed_count=processed,
        timer_at=state.timer_at, crashes=0, outbox=rows, now=now, turn=state.turn, tags=tags,
        transitions=transitions, opt_out=opt_out, their_number=conv.their,
        pending_lookup=pending_mark(webhook) if webhook is not None else lookup,
        clear_resume=conv.resume, handoff=handoff)
    return Turn(taken=True, wake_at=wake_at, state=state, processed=processed,
                last_not_before=last_not_before, status=status, steps=tuple(steps),
                rows=tuple(rows), tags=tuple(tags), transitions=tuple(transitions),
                outcome=outcome, opt_out=opt_out, lookup=lookup, webhook=webhook,
                handed_off=handed_off,
                started=started, step_seconds=tuple(seconds), commit=commit)
