"""The conversation state machine: `Machine.step(state, event, now) -> (state, effects)`.

Pure and synchronous: no I/O, no clock, no global randomness. `now` is passed in (Unix seconds)
and random choices come from the SplitMix64 counter kept in the state, so the same state and event
always give the same result. A `Machine` is built from a scenario by `compiler.compile_text`.

One step, for a reply: the reply is read once (`text.Text`); the state's global handlers are
tried (by priority), then its `expect` entries, in order; the first that matches runs its
actions and moves on. Entering a state emits `Transition`, runs the state's actions (set, tag,
lookup, opt out/in, say) and follows goto/if/split states until one waits (`expect`), hands
off (`handoff`) or ends (`end`). Named deadlines (the state's `timeout`, the scenario's
`expire`) live in `ConversationState.deadlines`; `timer_at` is the earliest of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from ..errors import EngineError
from . import rng
from .events import (
    CancelTimer,
    Capture,
    ConversationState,
    Effect,
    End,
    Event,
    HandOff,
    Lookup,
    LookupResult,
    Message,
    OptIn,
    OptOut,
    Resume,
    Send,
    SetTimer,
    Start,
    Tag,
    TimerFired,
    Transition,
    Webhook,
    WebhookResult,
)
from .match import Always, Condition, Matcher, all_hold
from .template import Template
from .text import READ_LIMIT, WORD, Text, fold

RETURN = "\x00return"
"""An entry's target: back to the state a global handler interrupted (or stay)."""
STAY = "\x00stay"
"""An entry's target: stay in the current state."""

TIMEOUT = "timeout"
EXPIRE = "expire"
_MAX_RETURNS = 8
SAMPLE_LIMIT = 400
"""Characters of the person's first texts kept to identify their language from."""
NEUTRAL_WORDS = frozenset({
    "ok", "okay", "okey", "oki", "k", "kk", "no", "si", "lol", "lmao", "xd", "jaja", "jajaja",
    "haha", "hahaha", "hmm", "mm", "ah", "oh", "eh", "ya", "u", "x", "q"})
"""Words that say nothing of a language ("no", "ok", "lol"): not counted towards the two words
a language decision needs, so "no" then "ok" decide nothing."""

# Node kinds
EXPECT, GOTO, END, IF, SPLIT, HANDOFF = "expect", "goto", "end", "if", "split", "handoff"
WAITING = frozenset({EXPECT, HANDOFF, END})


def normalise(text: str) -> str:
    """Lower-case, Unicode-compatibility-folded text for matching (see `text.fold`)."""
    return fold(text)


# ---------------------------------------------------------------------------------------------
# The compiled table


class Timeout(msgspec.Struct, frozen=True):
    """A state's `timeout`: no reply for `after` seconds moves to `target`."""

    after: float
    target: str


class Expiry(msgspec.Struct, frozen=True):
    """The scenario's `expire` setting: `after` seconds of silence enter `target` (None: the
    conversation ends at once)."""

    after: float
    target: str | None


class Branch(msgspec.Struct, frozen=True):
    """One branch of a `split` state, chosen with a chance in proportion to `weight`."""

    name: str
    weight: float
    target: str


class VisitLimit(msgspec.Struct, frozen=True):
    """A state's `visits`: once entered `limit` times, entering it goes to `target` instead."""

    limit: int
    target: str


class Busy(msgspec.Struct, frozen=True):
    """A state's `busy`: with this `chance`, the first reply waits `low` to `high` seconds
    more (the persona is busy)."""

    chance: float
    low: float
    high: float


class LanguageRule(msgspec.Struct, frozen=True):
    """How the person's first texts choose the conversation's language (see `Machine`)."""

    texts: int = 3
    confidence: float = 0.65


Variants = tuple[tuple[Template, ...], ...]
"""A `say`: variants, each one or more messages."""


@dataclass(frozen=True, slots=True)
class Actions:
    """What entering a state, or taking an entry, does (in this order)."""

    assign: tuple[tuple[str, Template], ...] = ()
    tags: tuple[str, ...] = ()
    lookup: str | None = None
    opt_out: Template | None = None
    opt_in: Template | None = None
    say: Variants = ()  # the default language's
    languages: tuple[tuple[str, Variants, Template | None, Template | None], ...] = ()
    """(language, say, opt_out, opt_in) given for another language than the default; an
    empty say or a None falls back to the default language's."""
    webhook: tuple[str, tuple[str, ...]] | None = None
    """(the webhook's name, the variables it is sent)."""

    def in_language(self, language: str
                    ) -> tuple[Variants, Template | None, Template | None]:
        """The say, opt-out and opt-in texts for a conversation in `language`."""
        for code, say, opt_out, opt_in in self.languages:
            if code == language:
                return (say or self.say, opt_out if opt_out is not None else self.opt_out,
                        opt_in if opt_in is not None else self.opt_in)
        return self.say, self.opt_out, self.opt_in

    @property
    def empty(self) -> bool:
        return not (self.assign or self.tags or self.lookup or self.say
                    or self.opt_out is not None or self.opt_in is not None
                    or self.webhook is not None)


NO_ACTIONS = Actions()


@dataclass(frozen=True, slots=True)
class Entry:
    """One compiled `expect` entry or global handler."""

    matcher: Matcher
    target: str  # a state name, RETURN or STAY
    trigger: str  # "expect[2]", "global:cop"
    actions: Actions = NO_ACTIONS
    when: tuple[Condition, ...] = ()
    name: str = ""
    priority: int = 0
    while_paused: bool = False  # opt-out/opt-in (and while_handed_off) handlers run when handed off

    @property
    def goto(self) -> str:
        return self.target

    @property
    def otherwise(self) -> bool:
        return isinstance(self.matcher, Always)


@dataclass(frozen=True, slots=True)
class LookupEntry:
    """One compiled `on_lookup` entry."""

    target: str  # a state name or STAY
    trigger: str
    kind: str | None = None
    ok: bool | None = None
    field: str | None = None
    when: tuple[Condition, ...] = ()
    actions: Actions = NO_ACTIONS

    def takes(self, result: LookupResult, values: dict[str, str]) -> bool:
        return ((self.kind is None or self.kind == result.kind)
                and (self.ok is None or self.ok == result.ok)
                and (self.field is None or bool(result.data.get(self.field)))
                and all_hold(self.when, values))


@dataclass(frozen=True, slots=True)
class WebhookEntry:
    """One compiled `on_webhook` entry."""

    target: str  # a state name or STAY
    trigger: str
    ok: bool | None = None
    error: str | None = None
    field: str | None = None
    when: tuple[Condition, ...] = ()
    actions: Actions = NO_ACTIONS

    def takes(self, result: WebhookResult, values: dict[str, str]) -> bool:
        return ((self.ok is None or self.ok == result.ok)
                and (self.error is None or self.error == result.error)
                and (self.field is None or bool(result.fields.get(self.field)))
                and all_hold(self.when, values))


def webhook_payload(names: tuple[str, ...], values: dict[str, str]) -> dict[str, str]:
    """The variables a webhook is sent ("" for one not set)."""
    return {name: values.get(name, "") for name in names}


@dataclass(frozen=True, slots=True)
class Node:
    """One compiled state."""

    name: str
    kind: str = EXPECT
    actions: Actions = NO_ACTIONS
    expect: tuple[Entry, ...] = ()
    timeout: Timeout | None = None
    on_lookup: tuple[LookupEntry, ...] = ()
    goto: str | None = None
    end: str | None = None
    condition: tuple[Condition, ...] = ()
    then: str | None = None
    otherwise: str | None = None  # `else`
    split: tuple[Branch, ...] = ()
    record: str = ""
    experiment: str = ""
    """The experiment this split is (empty: a plain split)."""
    resume: str | None = None
    reason: str = ""
    priority: str = "normal"
    visits: VisitLimit | None = None
    globals: tuple[Entry, ...] = ()
    merge: float = 0.0
    delay: float = 1.0
    busy: Busy | None = None
    on_webhook: tuple[WebhookEntry, ...] = ()

    @property
    def say(self) -> tuple[tuple[Template, ...], ...]:
        return self.actions.say

    @property
    def waits(self) -> bool:
        return self.kind in WAITING

    def exits(self) -> list[tuple[str, str]]:
        """(target, trigger) of every way out of this state; targets may be RETURN or STAY."""
        out: list[tuple[str, str]] = []
        if self.visits is not None:
            out.append((self.visits.target, f"visits:{self.name}"))
        if self.kind == EXPECT:
            out.extend((e.target, e.trigger) for e in self.globals)
            out.extend((e.target, e.trigger) for e in self.expect)
            if self.timeout is not None:
                out.append((self.timeout.target, TIMEOUT))
            out.extend((e.target, e.trigger) for e in self.on_lookup)
            out.extend((e.target, e.trigger) for e in self.on_webhook)
        elif self.kind == GOTO:
            out.append((self.goto or "", "goto"))
        elif self.kind == IF:
            out += [(self.then or "", "then"), (self.otherwise or "", "else")]
        elif self.kind == SPLIT:
            out.extend((b.target, f"split:{b.name}") for b in self.split)
        elif self.kind == HANDOFF:
            out.extend((e.target, e.trigger) for e in self.globals if e.while_paused)
            out.append((self.resume or "", "resume"))
        return out


class _Step:
    """The work of one step: a mutable copy of the state, and the effects so far."""

    __slots__ = ("busy_drawn", "deadlines", "effects", "heard", "machine", "node", "now",
                 "outcome", "paused", "returns", "sample", "seed", "state", "vars", "visits")

    def __init__(self, machine: Machine, state: ConversationState, now: float):
        self.machine = machine
        self.state = state
        self.now = now
        self.node = state.node
        self.vars = dict(state.vars)
        self.seed = state.rng
        self.visits = state.visits
        self.deadlines = dict(state.deadlines)
        if not state.deadlines and state.timer_at is not None:  # saved before named deadlines
            self.deadlines[TIMEOUT] = state.timer_at
        self.returns = state.returns
        self.paused = state.paused
        self.outcome = state.outcome
        self.effects: list[Effect] = []
        self.busy_drawn = False
        self.heard = state.heard
        self.sample = state.sample

    # -- actions ------------------------------------------------------------------------------

    def act(self, actions: Actions, node: Node) -> None:
        machine = self.machine
        language = machine.language_of(self.vars)
        values = machine.values_in(self.vars, language)
        effects = self.effects
        for key, template in actions.assign:
            value = template.render(values)
            self.vars[key] = value
            if values is not self.vars:
                values[key] = value
            if key == "language":  # the author chose it: detection stops
                self.heard, self.sample = -1, ""
                language = machine.language_of(self.vars)
                values = machine.values_in(self.vars, language)
        for tag in actions.tags:
            effects.append(Tag(tag))
        if actions.lookup is not None:
            effects.append(Lookup(actions.lookup))
        if actions.webhook is not None:
            call, names = actions.webhook
            effects.append(Webhook(call, webhook_payload(names, values)))
        say, opt_out, opt_in = actions.in_language(language) if actions.languages else (
            actions.say, actions.opt_out, actions.opt_in)
        if opt_out is not None:
            effects.append(OptOut(opt_out.render(values)))
        if opt_in is not None:
            effects.append(OptIn(opt_in.render(values)))
        if say:
            if len(say) > 1:
                index, self.seed = rng.choose(self.seed, len(say))
            else:
                index = 0
            extra = 0.0
            if not self.busy_drawn:
                self.busy_drawn = True
                busy = node.busy
                if busy is not None and busy.chance > 0:
                    value, self.seed = rng.next_value(self.seed)
                    if value / 2**64 < busy.chance:
                        value, self.seed = rng.next_value(self.seed)
                        extra = busy.low + (busy.high - busy.low) * (value / 2**64)
            scale = node.delay
            for template in say[index]:
                effects.append(Send(template.render(values), scale, extra))
                extra = 0.0

    def capture(self, captured: dict[str, str]) -> None:
        if captured:
            self.vars.update(captured)
            self.effects.extend(Capture(k, v) for k, v in captured.items())

    # -- moving -------------------------------------------------------------------------------

    def arm(self, node: Node) -> None:
        """The deadlines of a state that has just started (or restarted) waiting."""
        if node.timeout is not None:
            self.deadlines[TIMEOUT] = self.now + node.timeout.after
        else:
            self.deadlines.pop(TIMEOUT, None)

    def enter(self, target: str, trigger: str) -> None:
        """Enter `target` and follow the states that move on, until one waits or ends."""
        nodes = self.machine.nodes
        source = self.node
        for _ in range(self.machine.max_hops):
            node = nodes[target]
            if node.visits is not None and self.visits.get(target, 0) >= node.visits.limit:
                trigger = f"visits:{target}"
                target = node.visits.target
                continue
            visits = dict(self.visits)
            visits[target] = visits.get(target, 0) + 1
            self.visits = visits
            self.effects.append(Transition(source, target, trigger))
            self.node = target
            self.paused = False
            if not node.actions.empty:
                self.act(node.actions, node)
            kind = node.kind
            if kind == EXPECT:
                self.arm(node)
                return
            source = target
            if kind == GOTO:
                target, trigger = node.goto, "goto"  # type: ignore[assignment]
            elif kind == IF:
                if all_hold(node.condition, self.machine.values_in(self.vars)):
                    target, trigger = node.then, "then"  # type: ignore[assignment]
                else:
                    target, trigger = node.otherwise, "else"  # type: ignore[assignment]
            elif kind == SPLIT:
                target, trigger = self.split(node)
            elif kind == HANDOFF:
                self.effects.append(HandOff(node.reason, node.priority))
                self.paused = True
                self.deadlines.clear()
                return
            else:  # END
                self.outcome = node.end
                self.deadlines.clear()
                return
        raise EngineError(f"more than {self.machine.max_hops} states entered in one step from "
                          f"{source!r}")

    def split(self, node: Node) -> tuple[str, str]:
        chosen = self.vars.get(node.record)
        for branch in node.split:
            if branch.name == chosen:  # decided on an earlier visit: keep the same branch
                return branch.target, f"split:{branch.name}"
        total = sum(branch.weight for branch in node.split)
        value, self.seed = rng.next_value(self.seed)
        point = total * (value / 2**64)
        name, target = node.split[-1].name, node.split[-1].target
        for branch in node.split:
            if point < branch.weight:
                name, target = branch.name, branch.target
                break
            point -= branch.weight
        self.vars[node.record] = name
        self.effects.append(Tag(f"{node.record}:{name}"))
        return target, f"split:{name}"

    def go_back(self) -> None:
        """`return`: back to the state a global handler interrupted, silently; or stay."""
        if not self.returns:
            self.arm(self.machine.nodes[self.node])
            return
        *rest, target = self.returns
        self.returns = rest
        node = self.machine.nodes[target]
        self.effects.append(Transition(self.node, target, "return"))
        self.node = target
        if node.kind == HANDOFF:
            self.paused = True
            self.deadlines.clear()
        else:
            self.arm(node)

    def take(self, entry: Entry | LookupEntry | WebhookEntry, node: Node, *,
             is_global: bool = False) -> None:
        if not entry.actions.empty:
            self.act(entry.actions, node)
        target = entry.target
        if target == STAY:
            self.arm(node)
        elif target == RETURN:
            if is_global:
                self.arm(node)  # answered in place
            else:
                self.go_back()
        else:
            if is_global:
                self.returns = [*self.returns[-(_MAX_RETURNS - 1):], node.name]
            self.enter(target, entry.trigger)

    # -- the result ---------------------------------------------------------------------------

    def finish(self) -> tuple[ConversationState, list[Effect]]:
        state = self.state
        deadlines = self.deadlines
        timer_at = min(deadlines.values()) if deadlines else None
        effects = self.effects
        if timer_at != state.timer_at:
            effects.append(SetTimer(timer_at) if timer_at is not None else CancelTimer())
        if self.outcome is not None and state.outcome is None:
            effects.append(End(self.outcome))
        return ConversationState(
            scenario=state.scenario, version=state.version, node=self.node, vars=self.vars,
            rng=self.seed, turn=state.turn + 1, timer_at=timer_at, outcome=self.outcome,
            paused=self.paused, visits=self.visits, deadlines=deadlines,
            returns=self.returns, heard=self.heard, sample=self.sample), effects


class Machine:
    """A compiled scenario. Immutable and shared by every conversation that runs it."""

    def __init__(self, name: str, version: int, start: str, nodes: dict[str, Node], *,
                 expire: Expiry | None = None, description: str = "",
                 info: object = None, read_limit: int = READ_LIMIT,
                 languages: tuple[str, ...] = ("en",), detect: LanguageRule | None = None):
        self.name = name
        self.version = version
        self.start = start
        self.nodes = nodes
        self.expire = expire
        """What long silence does, if the scenario says."""
        self.description = description
        self.info = info
        """Where each part was written (`compiler.SourceInfo`), for the authoring tools."""
        self.max_hops = 2 * len(nodes) + 2
        self.read_limit = read_limit
        """Characters of a reply the matchers read; `message` keeps the whole text."""
        self.languages = languages
        """The languages the scenario speaks; the first is the default."""
        self.detect = detect if len(languages) > 1 else None
        """How the person's first texts choose the language (None: they do not)."""

    def __repr__(self) -> str:
        return f"<Machine {self.name} v{self.version}: {len(self.nodes)} states>"

    @property
    def experiments(self) -> dict[str, Node]:
        """The splits declared experiments, by experiment name."""
        return {n.experiment: n for n in self.nodes.values() if n.kind == SPLIT and n.experiment}

    def new_state(self, *, seed: int, context: dict[str, str]) -> ConversationState:
        """A conversation that has not started. `context` holds persona.* and city.* values
        (and per-language ones as "city.link@es"). A scenario of several languages starts in
        the persona's language when it speaks it, else in its default."""
        values = dict(context)
        if len(self.languages) > 1:
            wanted = values.get("persona.language", "")
            values["language"] = wanted if wanted in self.languages else self.languages[0]
        return ConversationState(scenario=self.name, version=self.version, vars=values,
                                 rng=seed)

    # -- languages ----------------------------------------------------------------------------

    def language_of(self, values: dict[str, str]) -> str:
        """The conversation's language when it is not the default, else ""."""
        if len(self.languages) < 2:
            return ""
        language = values.get("language", "")
        return language if language != self.languages[0] and language in self.languages else ""

    def values_in(self, values: dict[str, str], language: str | None = None
                  ) -> dict[str, str]:
        """The variables as a conversation in `language` sees them: "city.link@es" stands for
        "city.link" in Spanish. The same dict when nothing changes."""
        if language is None:
            language = self.language_of(values)
        if not language:
            return values
        suffix = "@" + language
        cut = len(suffix)
        own = {k[:-cut]: v for k, v in values.items() if k.endswith(suffix)}
        return {**values, **own} if own else values

    def language_sample(self, state: ConversationState, text: str) -> str | None:
        """What to identify the language of when `text` arrives: the person's undecided texts
        so far and this one, joined; None when the language is not to be detected."""
        if self.detect is None or state.heard < 0 or state.paused or state.ended:
            return None
        sample = f"{state.sample}\n{text}" if state.sample else text
        return sample[-SAMPLE_LIMIT:]

    def _hear(self, state: ConversationState, event: Message
              ) -> tuple[str | None, int, str]:
        """The language rule applied to one text: (the language to switch to or None, the
        texts heard, the sample kept). Decided once: at the rule's confidence, on a sample of
        at least two words that tell (not "ok", "no", "lol", numbers), in a declared language;
        after `texts` texts it stays as it is."""
        sample = self.language_sample(state, event.text)
        rule = self.detect
        if sample is None or rule is None:
            return None, state.heard, state.sample
        telling = [w for w in WORD.findall(fold(sample))
                   if w not in NEUTRAL_WORDS and not w.isdigit()]
        if (event.language in self.languages and event.confidence >= rule.confidence
                and len(telling) >= 2):
            return event.language, -1, ""
        heard = state.heard + 1
        if heard >= rule.texts:
            return None, -1, ""
        return None, heard, sample

    def merge_window(self, state: ConversationState) -> float:
        """Seconds to wait after a reply for more fragments before stepping them as one
        `Message` (texts joined by newlines); 0 means step each message at once."""
        if state.ended or state.paused:
            return 0.0
        node = self.nodes.get(state.node or self.start)
        return node.merge if node is not None else 0.0

    def step(self, state: ConversationState, event: Event, now: float
             ) -> tuple[ConversationState, list[Effect]]:
        """Apply one event. Raises `EngineError` (and changes nothing) for an impossible one."""
        if state.scenario != self.name or state.version != self.version:
            raise EngineError(f"state belongs to scenario {state.scenario!r} v{state.version}, "
                              f"not {self.name!r} v{self.version}")
        if isinstance(event, Start):
            if state.started:
                raise EngineError("the conversation has already started")
            run = _Step(self, state, now)
            if self.expire is not None:
                run.deadlines[EXPIRE] = now + self.expire.after
            run.enter(self.start, "start")
            return run.finish()
        if not state.started:
            raise EngineError(f"{type(event).__name__} before the conversation started")
        if state.ended:
            return state, []
        node = self.nodes.get(state.node)
        if node is None:
            raise EngineError(f"state {state.node!r} does not exist in {self.name!r} "
                              f"v{self.version}")
        if isinstance(event, Message):
            return self._message(state, node, event, now)
        if isinstance(event, TimerFired):
            return self._timer(state, node, now)
        if isinstance(event, LookupResult):
            return self._lookup(state, node, event, now)
        if isinstance(event, WebhookResult):
            return self._webhook(state, node, event, now)
        if isinstance(event, Resume):
            if not state.paused:
                raise EngineError("Resume for a conversation that is not handed off")
            target = event.state or node.resume or ""
            if target not in self.nodes:
                raise EngineError(f"cannot resume at {target!r}: no such state in "
                                  f"{self.name!r} v{self.version}")
            run = _Step(self, state, now)
            run.paused = False
            if self.expire is not None:
                run.deadlines[EXPIRE] = now + self.expire.after
            run.enter(target, "resume")
            return run.finish()
        raise EngineError(f"unknown event {event!r}")

    def _message(self, state: ConversationState, node: Node, event: Message, now: float
                 ) -> tuple[ConversationState, list[Effect]]:
        if self.detect is not None and state.heard >= 0 and not state.paused:
            switch, heard, sample = self._hear(state, event)
            values = dict(state.vars)
            if switch is not None:
                values["language"] = switch
            state = msgspec.structs.replace(state, vars=values, heard=heard, sample=sample)
        language = self.language_of(state.vars)
        text = Text(event.text, event.media, limit=self.read_limit,
                    language=language or self.languages[0])
        values = self.values_in(state.vars, language)
        paused = state.paused
        for entry in node.globals:
            if paused and not entry.while_paused:
                continue
            if entry.when and not all_hold(entry.when, values):
                continue
            captured = entry.matcher.match(text)
            if captured is not None:
                return self._take(state, node, entry, text, captured, now, is_global=True)
        if paused:
            return state, []
        for entry in node.expect:
            if entry.when and not all_hold(entry.when, values):
                continue
            captured = entry.matcher.match(text)
            if captured is not None:
                return self._take(state, node, entry, text, captured, now)
        raise EngineError(f"no reply matched in state {node.name!r}")  # compiler forbids

    def _take(self, state: ConversationState, node: Node, entry: Entry, text: Text,
              captured: dict[str, str], now: float, *, is_global: bool = False
              ) -> tuple[ConversationState, list[Effect]]:
        run = _Step(self, state, now)
        run.capture(captured)
        run.vars["message"] = text.raw
        if self.expire is not None and not state.paused:
            run.deadlines[EXPIRE] = now + self.expire.after
        run.take(entry, node, is_global=is_global)
        return run.finish()

    def _timer(self, state: ConversationState, node: Node, now: float
               ) -> tuple[ConversationState, list[Effect]]:
        if state.paused or state.timer_at is None or now < state.timer_at:
            return state, []
        run = _Step(self, state, now)
        for _ in range(len(run.deadlines) + 2):
            due = [(at, name) for name, at in run.deadlines.items() if at <= now]
            if not due or run.outcome is not None or run.paused:
                break
            _, name = min(due)
            del run.deadlines[name]
            current = self.nodes[run.node]
            if name == TIMEOUT and current.timeout is not None:
                run.enter(current.timeout.target, TIMEOUT)
            elif name == EXPIRE and self.expire is not None:
                if self.expire.target is not None:
                    run.enter(self.expire.target, "expired")
                else:
                    run.outcome = "expired"
                    run.deadlines.clear()
        return run.finish()

    def _lookup(self, state: ConversationState, node: Node, event: LookupResult, now: float
                ) -> tuple[ConversationState, list[Effect]]:
        run = _Step(self, state, now)
        for key, value in event.data.items():
            run.vars[f"{event.kind}.{key}"] = value
        if not state.paused:
            values = self.values_in(run.vars)
            for entry in node.on_lookup:
                if entry.takes(event, values):
                    run.take(entry, node)
                    break
        return run.finish()

    def _webhook(self, state: ConversationState, node: Node, event: WebhookResult, now: float
                 ) -> tuple[ConversationState, list[Effect]]:
        """The answer's fields become `call.field` variables (those of an earlier answer are
        dropped), with `call.http_status` and, on failure, `call.error`."""
        run = _Step(self, state, now)
        prefix = f"{event.call}."
        for key in [k for k in run.vars if k.startswith(prefix)]:
            del run.vars[key]
        for key, value in event.fields.items():
            run.vars[prefix + key] = value
        run.vars[prefix + "http_status"] = str(event.status)
        if not event.ok:
            run.vars[prefix + "error"] = event.error or "failed"
        if not state.paused:
            values = self.values_in(run.vars)
            for entry in node.on_webhook:
                if entry.takes(event, values):
                    run.take(entry, node)
                    break
        return run.finish()

    def pending_webhook(self, state: ConversationState) -> Webhook | None:
        """The call the state `state` is in makes on entering it, as it made it (the runtime
        redoes a call a restart interrupted); None when it calls none."""
        node = self.nodes.get(state.node)
        if node is None or node.actions.webhook is None or state.ended:
            return None
        call, names = node.actions.webhook
        return Webhook(call, webhook_payload(names, self.values_in(state.vars)))
