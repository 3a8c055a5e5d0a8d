"""Transcript tests: scripted conversations run on the pure engine with a simulated clock.

A test file (YAML) names a scenario and lists tests; each test is a list of steps: what the
other side sends (`them`, with `media` and `after`), time passing (`wait: +2h`), lookup and
webhook answers and operator resumes, and what to expect (`bot` lines, exact or /regex/;
`state`, `vars`, `tags`, `outcome`, `paused`, `effects`, `handoff` (the priority of the last
event's hand-off), `language` (the conversation's language)). The context gives the persona
(and its `language`) and the city, with per-language values under `languages`. Every turn is
the runtime's own `take_turn`: timers fire exactly when the engine asked, fragments sent
within the scenario's merge window are stepped as one message, and STOP / START / HELP get the
runtime's answers, as in production. See docs/scenarios.md, "Transcript tests".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..config import OptOutConfig
from ..engine import (
    ConversationState,
    Effect,
    HandOff,
    LookupResult,
    Machine,
    OptIn,
    OptOut,
    Send,
    Tag,
    TimerFired,
    Transition,
    WebhookResult,
    load_scenario,
)
from ..engine.durations import DURATION_PATTERN, parse_duration
from ..engine.model import Duration, LanguageCode
from ..engine.yamlsource import Located, Path, load_located, split_msgspec_error
from ..errors import EngineError, ScenarioError, ScenarioErrors
from ..runtime.delays import DelayModel
from ..runtime.turn import NEVER, Inbound, Turn, TurnInput, TurnRules, ready_events, take_turn

T0 = 1_700_000_000.0
"""The simulated clock's start (2023-11-14 22:13:20 UTC)."""

EVENTS = ("them", "wait", "lookup", "resume", "webhook")
CHECKS = ("bot", "state", "outcome", "vars", "tags", "paused", "effects", "handoff",
          "language")
MODIFIERS = {"them": {"media", "after"}}
RULES = TurnRules(optout=OptOutConfig(), delays=DelayModel(enabled=False), merge=True)
"""Turns as the runtime takes them: merged fragments, STOP / START / HELP answered with the
default `[optout]` texts; reply delays left out (the simulated clock shows no typing)."""


class Persona(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str = "Jasmine"
    age: int | str | None = 23
    style: str = "casual"
    language: Annotated[LanguageCode | None, Meta(
        description="The persona's language: the conversation starts in it when the scenario "
                    "speaks it (persona.language).")] = None


class CityLanguage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A city's values for conversations in one language (city.link@es...)."""

    name: str | None = None
    link: str | None = None
    deterrence: str | None = None


class City(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str = "Seattle"
    link: str = "https://help.example.org"
    region: str = "US"
    deterrence: Annotated[str | None, Meta(
        description="The city's own deterrence text ({city.deterrence}).")] = None
    languages: Annotated[dict[LanguageCode, CityLanguage] | None, Meta(
        description="Per language: name, link and deterrence for conversations in it "
                    "({es: {link: ...}}).")] = None


class Context(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What the number's config gives a conversation: persona, city, and more variables."""

    persona: Persona | None = None
    city: City | None = None
    vars: dict[str, str] | None = None


class Case(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One test: a conversation, step by step (seed, seeds, context and strict override the
    file's)."""

    name: str
    steps: list[dict[str, Any]]
    seed: int | None = None
    seeds: int | list[int] | None = None
    context: Context | None = None
    strict: bool | None = None


class TestFile(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A file of transcript tests for one scenario (docs/scenarios.md, "Transcript tests")."""

    scenario: Annotated[str, Meta(description="The scenario file, relative to this one.")]
    tests: list[Case]
    context: Annotated[Context | None, Meta(
        description="Persona, city and variables of every test (a test may override).")] = None
    seed: Annotated[int, Meta(description="The seed of random choices.")] = 0
    gap: Annotated[Duration, Meta(
        description="Time between two `them` steps unless `after` says otherwise.")] = "1m"
    strict: Annotated[bool, Meta(
        description="Every bot message must be checked by a `bot` line.")] = False


# Steps stay plain mappings when a file is loaded (`_parse_step` explains each mistake); this
# Struct describes them for the JSON Schema of test files (intercept.authoring.schema), and a
# test keeps its fields the same as EVENTS, CHECKS and MODIFIERS.
_WAIT_PATTERN = "^\\+*" + DURATION_PATTERN.removeprefix("^")
Wait = Annotated[str | int | float, Meta(extra_json_schema={"pattern": _WAIT_PATTERN,
                                                            "minimum": 0})]
Text = str | int | float
EffectName = Literal["send", "set_timer", "cancel_timer", "capture", "tag", "lookup", "hand_off",
                 "opt_out", "opt_in", "transition", "end", "webhook"]


class LookupAnswer(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    ok: bool = True
    data: dict[str, str] = {}


class WebhookAnswer(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    call: str
    ok: bool = True
    status: int = 0
    """The HTTP status (default: 200 when ok, else 0)."""
    error: Literal["timeout", "failed", "refused", ""] = ""
    """Why it failed (default: failed when not ok)."""
    fields: dict[str, str] = {}


def webhook_answer(value: dict[str, Any]) -> WebhookResult:
    """The `WebhookResult` a transcript step's `webhook:` stands for, defaults filled in."""
    answer = msgspec.convert(value, WebhookAnswer)
    return WebhookResult(answer.call, answer.ok,
                         answer.status or (200 if answer.ok else 0),
                         "" if answer.ok else answer.error or "failed", answer.fields)


class StepSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One step: one event (them, wait, lookup, webhook, resume) and any checks, or checks."""

    them: Annotated[Text | msgspec.UnsetType, Meta(
        description="They send this text (quote it if it looks like a number or yes/no).")
                    ] = msgspec.UNSET
    media: Annotated[list[str] | msgspec.UnsetType, Meta(
        description="With them: URLs of media sent with the text.")] = msgspec.UNSET
    after: Annotated[Wait | msgspec.UnsetType, Meta(
        description="With them: time since the previous step ('5s', '+5s'; default: gap).")
                     ] = msgspec.UNSET
    wait: Annotated[Literal["timer"] | Wait | msgspec.UnsetType, Meta(
        description="Time passes ('2h' or '+2h'); 'timer': until the next timer.")
                    ] = msgspec.UNSET
    lookup: Annotated[LookupAnswer | msgspec.UnsetType, Meta(
        description="A lookup's answer arrives: {kind, ok, data}.")] = msgspec.UNSET
    resume: Annotated[bool | str | msgspec.UnsetType, Meta(
        description="An operator hands the conversation back: true, or the state to resume "
                    "at.")] = msgspec.UNSET
    webhook: Annotated[WebhookAnswer | msgspec.UnsetType, Meta(
        description="A webhook's answer arrives: {call, ok, status, error, fields}.")
                       ] = msgspec.UNSET
    bot: Annotated[str | list[str] | msgspec.UnsetType, Meta(
        description="The bot's next messages: exact text or /regex/; '...' skips the rest; "
                    "[] means it said nothing.")] = msgspec.UNSET
    state: Annotated[str | msgspec.UnsetType, Meta(
        description="The conversation is in this state.")] = msgspec.UNSET
    outcome: Annotated[str | msgspec.UnsetType | None, Meta(
        description="It ended with this outcome (null: not ended).")] = msgspec.UNSET
    vars: Annotated[dict[str, Text | None] | msgspec.UnsetType, Meta(
        description="Each variable has this value (/regex/ allowed; null: unset or empty).")
                    ] = msgspec.UNSET
    tags: Annotated[list[str] | msgspec.UnsetType, Meta(
        description="The conversation has these tags.")] = msgspec.UNSET
    paused: Annotated[bool | msgspec.UnsetType, Meta(
        description="It is handed off to a person, or not.")] = msgspec.UNSET
    effects: Annotated[EffectName | list[EffectName] | msgspec.UnsetType, Meta(
        description="The last event produced these effects.")] = msgspec.UNSET
    handoff: Annotated[Literal["normal", "urgent"] | msgspec.UnsetType, Meta(
        description="The last event handed the conversation off with this priority.")
                       ] = msgspec.UNSET
    language: Annotated[LanguageCode | msgspec.UnsetType, Meta(
        description="The conversation is in this language (one the scenario declares).")
                        ] = msgspec.UNSET


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass(slots=True)
class Step:
    kind: str
    value: Any
    options: dict[str, Any]
    line: int
    text: str  # as written, for reports


@dataclass(slots=True)
class Test:
    name: str
    line: int
    seeds: list[int]
    context: dict[str, str]
    steps: list[Step]
    strict: bool


@dataclass(slots=True)
class Suite:
    path: str
    machine: Machine
    tests: list[Test]
    gap: float


def _context(*layers: Context | None) -> dict[str, str]:
    persona, city, extra = Persona(), City(), {}
    for layer in layers:
        if layer is None:
            continue
        if layer.persona is not None:
            persona = layer.persona
        if layer.city is not None:
            city = layer.city
        extra.update(layer.vars or {})
    values = {"persona.name": persona.name,
              "persona.age": "" if persona.age is None else str(persona.age),
              "persona.style": persona.style, "city.name": city.name, "city.link": city.link,
              "city.region": city.region}
    if persona.language is not None:
        values["persona.language"] = persona.language
    if city.deterrence is not None:
        values["city.deterrence"] = city.deterrence
    for code, own in (city.languages or {}).items():
        for key in ("name", "link", "deterrence"):
            value = getattr(own, key)
            if value is not None:
                values[f"city.{key}@{code}"] = value
    return {**values, **extra}


def _render_step(raw: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}"
                     for k, v in raw.items())


def load_suite(path: str | FsPath) -> Suite:
    """Read a test file and compile its scenario; errors as `file:line:col: path: message`."""
    path = FsPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    doc = load_located(text, str(path))
    errors: list[ScenarioError] = []

    def fail(where: Path, message: str) -> None:
        errors.append(doc.error(where, message))

    try:
        spec = msgspec.convert(doc.data, TestFile)
    except msgspec.ValidationError as exc:
        message, sub = split_msgspec_error(str(exc))
        raise doc.error(sub, message) from None
    scenario_path = path.parent / spec.scenario
    try:
        machine = load_scenario(scenario_path)
    except ScenarioError as exc:
        raise ScenarioErrors([doc.error(("scenario",), f"the scenario does not compile: "
                                                       f"{exc.render()}")]) from None
    try:
        gap = parse_duration(spec.gap)
    except ValueError as exc:
        fail(("gap",), str(exc))
        gap = 60.0
    tests = []
    for i, case in enumerate(spec.tests):
        base: Path = ("tests", i)
        line = doc.where(base)[0]
        if case.seeds is not None:
            seeds = list(range(case.seeds)) if isinstance(case.seeds, int) else case.seeds
        else:
            seeds = [case.seed if case.seed is not None else spec.seed]
        steps = []
        for j, raw in enumerate(case.steps):
            where: Path = (*base, "steps", j)
            steps.extend(_parse_step(raw, where, doc, fail, machine))
        tests.append(Test(case.name, line, seeds, _context(spec.context, case.context), steps,
                          case.strict if case.strict is not None else spec.strict))
    if errors:
        raise ScenarioErrors(errors)
    return Suite(str(path), machine, tests, gap)


def _parse_step(raw: dict[str, Any], where: Path, doc: Located, fail: Any,
                machine: Machine) -> Iterator[Step]:
    kinds = [k for k in raw if k in EVENTS or k in CHECKS]
    unknown = [k for k in raw if k not in EVENTS and k not in CHECKS
               and not any(k in m for m in MODIFIERS.values())]
    if unknown:
        fail((*where, unknown[0]), f"unknown step {unknown[0]!r}: use one of "
                                   f"{', '.join(EVENTS + CHECKS)}")
        return
    events = [k for k in kinds if k in EVENTS]
    if len(events) > 1 or (not kinds):
        fail(where, "give one of them, wait, lookup, webhook or resume per step (checks such "
                    "as bot or state may follow in the same step)" if kinds else "an empty step")
        return
    for key in raw:
        if key not in kinds and not (events and key in MODIFIERS.get(events[0], ())):
            fail((*where, key), f"{key!r} only goes with "
                                f"{' or '.join(k for k, m in MODIFIERS.items() if key in m)}")
    # the event first, then the checks, in the order written
    order = events + [k for k in kinds if k not in EVENTS]
    for kind in order:
        value = raw[kind]
        kpath: Path = (*where, kind)
        options = {k: raw[k] for k in MODIFIERS.get(kind, ()) if k in raw}
        problem = _check_step(kind, value, options, machine)
        if problem:
            fail(kpath, problem)
            continue
        yield Step(kind, value, options, doc.where(kpath)[0],
                   _render_step({kind: value, **options}))


def _check_step(kind: str, value: Any, options: dict[str, Any], machine: Machine) -> str:
    """A sentence describing what is wrong with a step, or ""."""
    if kind == "them":
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return "write what they send as text (quote it if it looks like a number or yes/no)"
        media = options.get("media", [])
        if not isinstance(media, list) or not all(isinstance(m, str) for m in media):
            return "media must be a list of URLs"
        if "after" in options:
            try:
                parse_duration(str(options["after"]).lstrip("+"))
            except ValueError as exc:
                return f"after: {exc}"
    elif kind == "wait":
        if value == "timer":
            return ""
        try:
            parse_duration(str(value).lstrip("+"))
        except ValueError as exc:
            return f"{exc}, or 'timer' for the next timer"
    elif kind == "bot":
        lines = value if isinstance(value, list) else [value]
        for line in lines:
            if not isinstance(line, str):
                return "bot lines are text, or /regex/"
            if _is_regex(line):
                try:
                    re.compile(line[1:-1])
                except re.error as exc:
                    return f"invalid regular expression {line}: {exc}"
    elif kind == "state":
        if value not in machine.nodes:
            return f"the scenario has no state {value!r}"
    elif kind == "vars":
        if not isinstance(value, dict):
            return "vars is a mapping of variable names to expected values (or null for unset)"
    elif kind == "tags":
        if not isinstance(value, list):
            return "tags is a list of tag names"
    elif kind == "paused":
        if not isinstance(value, bool):
            return "paused is true or false"
    elif kind == "handoff":
        if value not in ("normal", "urgent"):
            return "handoff is the priority the last event's hand-off has: normal or urgent"
    elif kind == "language":
        if value not in machine.languages:
            return (f"the scenario speaks {', '.join(machine.languages)}: language is one of "
                    f"them, not {value!r}")
    elif kind == "effects":
        known = {"send", "set_timer", "cancel_timer", "capture", "tag", "lookup", "hand_off",
                 "opt_out", "opt_in", "transition", "end", "webhook"}
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in known]
        if bad:
            return f"unknown effect {bad[0]!r}: known are {', '.join(sorted(known))}"
    elif kind == "lookup":
        if not isinstance(value, dict) or "kind" not in value:
            return "lookup needs at least {kind: ..., ok: true|false, data: {...}}"
        try:
            msgspec.convert({"ok": True, **value}, LookupResult)
        except msgspec.ValidationError as exc:
            return f"bad lookup answer: {split_msgspec_error(str(exc))[0]}"
    elif kind == "webhook":
        if not isinstance(value, dict) or "call" not in value:
            return "webhook needs at least {call: ..., ok: true|false, fields: {...}}"
        try:
            webhook_answer(value)
        except msgspec.ValidationError as exc:
            return f"bad webhook answer: {split_msgspec_error(str(exc))[0]}"
    elif kind == "resume" and value is not True and value not in machine.nodes:
        return "resume: true, or the name of a state to resume at"
    return ""


def _is_regex(line: str) -> bool:
    return len(line) >= 2 and line.startswith("/") and line.endswith("/")


# ---------------------------------------------------------------------------------------------
# Running


class Failure(Exception):
    """A step did not go as the test expected."""


@dataclass(slots=True)
class Result:
    test: Test
    seed: int
    ok: bool
    message: str = ""
    step: Step | None = None
    log: list[str] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)

    def title(self) -> str:
        seed = f" (seed {self.seed})" if len(self.test.seeds) > 1 or self.seed else ""
        return f"{self.test.name}{seed}"


class Conversation:
    """One simulated conversation with a clock, turn by turn as production takes it.

    Every turn is `take_turn`, the function the runtime's actors call: fragments are merged
    over the scenario's quiet period, and STOP, START and HELP get the runtime's answers (the
    default texts of the `[optout]` config section) when the scenario does not handle them.
    """

    def __init__(self, machine: Machine, context: dict[str, str], seed: int):
        self.machine = machine
        self.now = T0
        self.state: ConversationState = machine.new_state(seed=seed, context=context)
        self.unread: list[str] = []
        self.recent: list[Effect] = []  # effects since the last event
        self.tags: list[str] = []
        self.visited: set[str] = set()
        self.log: list[str] = []
        self.inbox: dict[int, Inbound] = {}
        self.received = 0  # conv_seq of the last message they sent
        self.processed = 0
        self.opted_out = False
        self._take()

    def _take(self, *, lookup_result: LookupResult | None = None, resume: str | None = None,
              webhook_result: WebhookResult | None = None) -> Turn:
        """Take the turn that is ready now and record what it did."""
        conv = TurnInput(conversation_id=0, our="", their="", machine=self.machine,
                         state=self.state, processed=self.processed, pending=self.inbox,
                         opted_out=self.opted_out, resume=resume is not None,
                         resume_at=resume or "", lookup_result=lookup_result,
                         webhook_result=webhook_result)
        try:
            turn = take_turn(conv, self.now, RULES)
        except EngineError as exc:
            events = ready_events(conv, self.now, RULES)[0]
            name = type(events[-1][0]).__name__ if events else "event"
            raise Failure(f"the engine refused the {name}: {exc}") from None
        if turn.taken:
            self._record(turn)
        return turn

    def _record(self, turn: Turn) -> None:
        self.state = turn.state
        for seq in range(self.processed + 1, turn.processed + 1):
            self.inbox.pop(seq, None)
        self.processed = turn.processed
        if turn.opt_out is not None:
            self.opted_out = turn.opt_out
        for step in turn.steps:
            if isinstance(step.event, TimerFired):
                self.log.append(f"        (timer, {self._clock()})")
            self.recent.extend(step.effects)
            rows = list(step.rows)
            for effect in step.effects:
                if isinstance(effect, Send):
                    self._said(rows.pop(0).body)
                elif isinstance(effect, Transition):
                    self.visited.add(effect.target)
                    self.log.append(f"        [{effect.source or 'start'} -> {effect.target}: "
                                    f"{effect.trigger}]")
                else:
                    if isinstance(effect, Tag):
                        self.tags.append(effect.name)
                    tag = type(effect).__struct_config__.tag
                    if tag not in ("set_timer", "cancel_timer", "transition"):
                        fields = msgspec.structs.asdict(effect)
                        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
                        self.log.append(f"        ({tag}{': ' + shown if shown else ''})")
                    if (isinstance(effect, OptOut | OptIn) and rows
                            and rows[0].kind == "confirmation"):
                        self._said(rows.pop(0).body)

    def _said(self, text: str) -> None:
        self.unread.append(text)
        self.log.append(f"   bot: {text}")

    def advance(self, until: float) -> None:
        """Let time pass to `until`: merged fragments and timers happen when they are due."""
        while True:
            turn = self._take()
            if turn.taken:
                continue
            timer_at = self.state.timer_at
            nexts = [t for t in (turn.wake_at, timer_at) if t is not None and t <= until]
            if not nexts:
                break
            self.now = max(self.now, min(nexts))
        self.now = max(self.now, until)

    def settle(self) -> None:
        """Step any fragments still waiting for the merge window to pass."""
        turn = self._take()
        if not turn.taken and turn.wake_at != NEVER:
            self.advance(turn.wake_at)

    def _clock(self) -> str:
        seconds = int(self.now - T0)
        return f"+{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"

    # -- events -------------------------------------------------------------------------------

    def them(self, text: str, media: tuple[str, ...]) -> None:
        shown = text + (f" [media: {', '.join(media)}]" if media else "")
        self.log.append(f"  them: {shown}   ({self._clock()})")
        self.received += 1
        self.inbox[self.received] = Inbound(self.received, text, media, self.now)
        self._take()

    def wait(self, value: Any) -> None:
        self.settle()
        if value == "timer":
            if self.state.timer_at is None:
                raise Failure(f"no timer is set in state {self.state.node!r}")
            self.log.append(f"  wait: for the timer ({self.state.timer_at - self.now:g}s)")
            self.advance(self.state.timer_at)
        else:
            seconds = parse_duration(str(value).lstrip("+"))
            self.log.append(f"  wait: {value}")
            self.advance(self.now + seconds)

    def lookup(self, value: dict[str, Any]) -> None:
        self.settle()
        result = msgspec.convert({"ok": True, **value}, LookupResult)
        self.log.append(f"  lookup answer: {result.kind} ok={result.ok} {dict(result.data)}")
        self._take(lookup_result=result)

    def webhook(self, value: dict[str, Any]) -> None:
        self.settle()
        result = webhook_answer(value)
        shown = f"ok={result.ok} status={result.status}" + (
            f" error={result.error}" if result.error else "")
        self.log.append(f"  webhook answer: {result.call} {shown} {dict(result.fields)}")
        self._take(webhook_result=result)

    def resume(self, value: Any) -> None:
        self.settle()
        self.log.append("  operator resumes" + (f" at {value}" if value is not True else ""))
        if not self.state.paused:
            raise Failure("the engine refused the Resume: the conversation is not handed off")
        self._take(resume="" if value is True else str(value))


def _line_matches(expected: str, actual: str) -> bool:
    if _is_regex(expected):
        return re.search(expected[1:-1], actual) is not None
    return expected == actual


def _value_matches(expected: Any, actual: str | None) -> bool:
    if expected is None:
        return actual is None or actual == ""
    if actual is None:
        return False
    if isinstance(expected, str) and _is_regex(expected):
        return re.search(expected[1:-1], actual) is not None
    if isinstance(expected, bool):
        expected = "true" if expected else "false"
    return str(expected) == actual


def run_test(suite: Suite, test: Test, seed: int) -> Result:
    result = Result(test, seed, ok=True)
    try:
        conversation = Conversation(suite.machine, test.context, seed)
    except Failure as exc:
        return Result(test, seed, ok=False, message=str(exc))
    try:
        for step in test.steps:
            result.step = step
            if step.kind in EVENTS:
                # time passes first: what the bot says meanwhile belongs to earlier steps
                if step.kind == "them":
                    after = step.options.get("after")
                    conversation.advance(conversation.now + (
                        parse_duration(str(after).lstrip("+")) if after is not None
                        else suite.gap))
                else:
                    conversation.settle()
                if test.strict and conversation.unread:
                    raise Failure("the bot said more than the test expects:\n" + "\n".join(
                        f"      {line}" for line in conversation.unread))
                conversation.recent = []
                conversation.unread = []
                if step.kind == "them":
                    conversation.them(str(step.value), tuple(step.options.get("media", ())))
                else:
                    getattr(conversation, step.kind)(step.value)
                continue
            conversation.settle()
            _check(conversation, step)
        result.step = None
        conversation.settle()
        if test.strict and conversation.unread:
            raise Failure("the bot said more than the test expects:\n" + "\n".join(
                f"      {line}" for line in conversation.unread))
    except Failure as exc:
        result.ok = False
        result.message = str(exc)
    result.log = conversation.log
    result.visited = conversation.visited
    return result


def _check(conversation: Conversation, step: Step) -> None:
    state = conversation.state
    kind, value = step.kind, step.value
    if kind == "bot":
        expected = value if isinstance(value, list) else [value]
        unread = conversation.unread
        if not expected:
            if unread:
                raise Failure("expected the bot to say nothing, but it said:\n" + "\n".join(
                    f"      {line}" for line in unread))
            return
        for i, line in enumerate(expected):
            if line == "...":
                conversation.unread = []
                return
            if not unread:
                said = "nothing more" if i else "nothing"
                raise Failure(f"expected the bot to say\n      {line}\n    but it said {said}")
            actual = unread.pop(0)
            if not _line_matches(line, actual):
                raise Failure(f"expected the bot to say\n      {line}\n    but it said\n"
                              f"      {actual}")
    elif kind == "state":
        if state.node != value:
            raise Failure(f"expected state {value!r}, but the conversation is in "
                          f"{state.node!r}")
    elif kind == "outcome":
        if (state.outcome or None) != (value or None):
            raise Failure(f"expected outcome {value!r}, got {state.outcome!r}")
    elif kind == "vars":
        for name, expected in value.items():
            actual = state.vars.get(name)
            if not _value_matches(expected, actual):
                raise Failure(f"expected {name} = {expected!r}, got "
                              f"{'unset' if actual is None else repr(actual)}")
    elif kind == "tags":
        missing = [t for t in value if t not in conversation.tags]
        if missing:
            raise Failure(f"expected tag(s) {', '.join(map(repr, missing))}; the conversation "
                          f"has {', '.join(map(repr, conversation.tags)) or 'none'}")
    elif kind == "paused":
        if state.paused != value:
            raise Failure(f"expected paused: {value}, got {state.paused}")
    elif kind == "language":
        actual = state.vars.get("language") or conversation.machine.languages[0]
        if actual != value:
            raise Failure(f"expected the conversation in {value!r}, but it is in {actual!r}")
    elif kind == "handoff":
        given = [e.priority for e in conversation.recent if isinstance(e, HandOff)]
        if not given:
            raise Failure(f"expected an {value} hand-off from the last event; there was none")
        if given[-1] != value:
            raise Failure(f"expected an {value} hand-off, but it was {given[-1]}")
    elif kind == "effects":
        wanted = value if isinstance(value, list) else [value]
        seen = [type(e).__struct_config__.tag for e in conversation.recent]
        missing = [w for w in wanted if w not in seen]
        if missing:
            raise Failure(f"expected effect(s) {', '.join(missing)} from the last event; got "
                          f"{', '.join(dict.fromkeys(seen)) or 'none'}")


@dataclass(slots=True)
class SuiteResult:
    suite: Suite
    results: list[Result]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def visited(self) -> set[str]:
        return set().union(*(r.visited for r in self.results)) if self.results else set()

    @property
    def unvisited(self) -> list[str]:
        return sorted(set(self.suite.machine.nodes) - self.visited)


def run_suite(suite: Suite, *, only: str | None = None) -> SuiteResult:
    results = [run_test(suite, test, seed) for test in suite.tests
               if only is None or only.lower() in test.name.lower() for seed in test.seeds]
    return SuiteResult(suite, results)


def report(result: Result, path: str) -> str:
    """A failure as readable text: where, what was expected, and the conversation so far."""
    step = result.step
    where = f"{path}:{step.line}" if step else f"{path}:{result.test.line}"
    lines = [f"FAIL {where}: {result.title()}"]
    if step is not None:
        lines.append(f"  step: {step.text}")
    lines.append("  " + result.message.replace("\n", "\n  "))
    if result.log:
        lines.append("  conversation so far:")
        lines.extend(f"  {entry}" for entry in result.log)
    return "\n".join(lines)

