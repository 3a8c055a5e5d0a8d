"""Scenario YAML -> `Machine`, with every error located as ``file:line:col: path: message``.

A file may `include` others (paths relative to it): their intents, global handlers, states and
settings come first, and the including file's own definitions of the same name replace them.
States that only an included file defines and that the scenario never reaches are dropped.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from pathlib import PurePosixPath
from typing import Any, TypeVar

import msgspec

from ..errors import ScenarioError, ScenarioErrors
from .durations import parse_duration
from .machine import (
    EXPECT,
    GOTO,
    HANDOFF,
    IF,
    RETURN,
    SPLIT,
    STAY,
    Actions,
    Branch,
    Busy,
    Entry,
    Expiry,
    LanguageRule,
    LookupEntry,
    Machine,
    Node,
    Timeout,
    VisitLimit,
    WebhookEntry,
)
from .match import (
    AllWords,
    Always,
    Answer,
    AnyOf,
    Condition,
    Fuzzy,
    Has,
    Matcher,
    Number,
    Regex,
    Words,
)
from .model import Condition as ConditionSpec
from .model import (
    Global,
    IntentPattern,
    LanguageSettings,
    LookupReply,
    NumberMatch,
    Pattern,
    Reply,
    Scenario,
    Settings,
    State,
    WebhookCall,
    WebhookReply,
)
from .template import Template
from .text import READ_LIMIT, WORD, fold
from .yamlsource import Located, Path, format_path, load_located, split_msgspec_error

_T = TypeVar("_T")

# Placeholders every conversation has. persona.* and city.* come from the number's config.
CONTEXT_VARS = frozenset({
    "persona.name", "persona.age", "persona.style", "persona.language",
    "city.name", "city.link", "city.region", "city.deterrence",
    "message", "language",
})
DEFAULT_LANGUAGES = ("en",)
"""A scenario that declares no `languages` speaks English."""
_LANGUAGE = re.compile(r"[a-z]{2,3}")

# The lookup kinds the runtime answers (intercept.runtime.lookups registers no other): a
# scenario asking for another kind would only ever get "no lookup provider".
LOOKUP_KINDS: dict[str, str] = {
    "number": "offline metadata of the other side's number (built in)",
    "caller_name": "the caller's name and line type, from the provider in [lookups]",
    "buyer": "the number's metadata plus, with a provider in [lookups], the caller's name",
}

MATCHERS = ("keywords", "all", "phrase", "fuzzy", "regex", "number", "answer", "has", "intent")
EXITS = ("expect", "goto", "if", "split", "handoff", "end")

_STATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_KIND = re.compile(r"[a-z][a-z0-9_]*")
WEBHOOK_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""The name of a webhook reply's field that becomes a variable (and that `field:` may test)."""
MAX_WEBHOOK_VARS = 50
"""Variables one webhook call may send."""
_STATE_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(State))
_ENTRY_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(Reply)) - _STATE_FIELDS


@dataclass(frozen=True, slots=True)
class Loc:
    """Where something was written."""

    file: str
    line: int
    col: int
    path: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(slots=True)
class SourceInfo:
    """What the authoring tools need to point at the text: kept on `Machine.info`."""

    file: str
    files: list[str] = field(default_factory=list)
    top: Loc | None = None
    states: dict[str, Loc] = field(default_factory=dict)
    own_states: set[str] = field(default_factory=set)
    messages: list[tuple[Loc, str, Template]] = field(default_factory=list)
    """(where, state name or "globals", template) of every text the scenario can send."""
    regexes: list[tuple[Loc, str]] = field(default_factory=list)
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    texts: list[tuple[Loc, str, frozenset[str]]] = field(default_factory=list)
    """(where, state name or "globals", languages given) of every say/opt_out/opt_in."""
    opt_out: bool = False
    """A global handler opts the sender out (STOP is honoured)."""


@dataclass(slots=True)
class _Def:
    """A definition (state, intent, handler, setting) and the file position it came from."""

    doc: Located
    path: Path
    raw: Any


def load_scenario(path: str | FsPath, *, read_limit: int = READ_LIMIT) -> Machine:
    """Read and compile one scenario file (and the files it includes). `read_limit`: the
    characters of a reply its matchers read (the whole text is kept in `message`)."""
    path = FsPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    return compile_text(text, file=str(path), read_limit=read_limit)


def compile_text(text: str, *, file: str = "<scenario>", read_limit: int = READ_LIMIT
                 ) -> Machine:
    """Compile a scenario; `include` paths are relative to `file`'s folder."""
    if read_limit < 1:
        raise ValueError(f"read_limit must be at least 1 character, not {read_limit}")
    return _Compiler(load_located(text, file)).compile(read_limit)


def _join(base: str, relative: str) -> str:
    """`scenarios/a.yaml` + `shared/b.yaml` -> `scenarios/shared/b.yaml` (`..` collapsed)."""
    parts: list[str] = []
    start = PurePosixPath(base.replace("\\", "/")).parent
    joined = start / relative if not PurePosixPath(relative).is_absolute() else \
        PurePosixPath(relative)
    for part in joined.parts:
        if part == ".." and parts and parts[-1] not in ("..", "/"):
            parts.pop()
        elif part != ".":
            parts.append(part)
    return str(PurePosixPath(*parts)) if parts else "."


def _merge_words(patterns: list[Matcher]) -> tuple[Matcher, ...]:
    """One keyword matcher for all of an intent's plain keywords (they capture nothing, so the
    order among them does not matter): one set lookup per reply instead of one per pattern."""
    plain = [p for p in patterns if type(p) is Words and p.capture is None]
    if len(plain) < 2:
        return tuple(patterns)
    merged = Words([])
    merged.words = frozenset().union(*(p.words for p in plain))
    merged.phrases = tuple(dict.fromkeys(ph for p in plain for ph in p.phrases))
    merged.symbols = tuple(dict.fromkeys(sy for p in plain for sy in p.symbols))
    out: list[Matcher] = []
    for pattern in patterns:
        if pattern is plain[0]:
            out.append(merged)
        elif pattern not in plain:
            out.append(pattern)
    return tuple(out)


class _Compiler:
    def __init__(self, doc: Located):
        self.root = doc
        self.doc = doc  # the file whose definition is being compiled (errors point into it)
        self.errors: list[ScenarioError] = []
        self.info = SourceInfo(file=doc.file, files=[doc.file])
        self.experiments: dict[str, str] = {}
        """Experiment name -> the state whose split declares it."""

    # -- errors -------------------------------------------------------------------------------

    def fail(self, path: Path, message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    def raise_errors(self) -> None:
        if self.errors:
            unique = {e.render(): e for e in self.errors}
            order = {f: i for i, f in enumerate(self.info.files)}
            errors = sorted(unique.values(), key=lambda e: (order.get(e.file, -1) != 0,
                                                            order.get(e.file, 99), e.line, e.col))
            raise ScenarioErrors(errors)

    @staticmethod
    def salvage(raw: Any, type_: Any) -> Any:
        """`raw` as `type_` without the list entries (or, outside lists, the keys) that hold
        conversion errors; None when nothing converts."""
        data = copy.deepcopy(raw)
        for _ in range(100):
            try:
                return msgspec.convert(data, type_)
            except msgspec.ValidationError as exc:
                _, sub = split_msgspec_error(str(exc))
            if not sub:
                return None
            cut = max((i for i, part in enumerate(sub) if isinstance(part, int)), default=0)
            holder = data
            for part in sub[:cut]:
                holder = holder[part]
            try:
                del holder[sub[cut]]
            except (KeyError, IndexError, TypeError):
                return None
        return None

    def indentation_hints(self, first: int, name: str, definition: _Def,
                          states: dict[str, _Def]) -> None:
        """Add a hint to the "unknown field" errors (from `first` on) of state `name` when the
        field is mis-indented: a key of the state nested too deep, a key of an `expect` entry
        at the state's level, or a state named like a state key (a dedented `timeout:`)."""
        doc = definition.doc
        for i in range(first, len(self.errors)):
            error = self.errors[i]
            if not error.message.startswith("unknown field "):
                continue
            parts = re.split(r"[.\[]", error.path)
            field = parts[-1]
            hint = ""
            if name in _STATE_FIELDS and len(parts) == 3:
                # states.<name>.<field>: `name` may be a key of the state above, dedented
                own = [n for n, d in states.items() if d.doc is doc]
                at = own.index(name) if name in own else 0
                if at > 0:
                    above = own[at - 1]
                    line, _ = doc.keys.get(("states", name), (error.line, 0))
                    inner = doc.marks.get(("states", above))
                    where = (f", at column {inner[1]} like the key at line {inner[0]}"
                             if inner and isinstance(states[above].raw, dict) else "")
                    hint = (f"; {name!r} (line {line}) is read as a state because it is indented "
                            f"like one: if it is the {name!r} of state {above!r}, indent it "
                            f"under that state{where}")
            elif len(parts) > 3 and field in _STATE_FIELDS:
                sibling = doc.marks.get(definition.path)
                if sibling:
                    hint = (f"; {field!r} is a key of the state {name!r}, not of what it sits "
                            f"in: dedent it to column {sibling[1]}, like the key at line "
                            f"{sibling[0]}")
            elif len(parts) == 3 and field in _ENTRY_FIELDS:
                raw = definition.raw
                if isinstance(raw, dict) and isinstance(raw.get("expect"), list):
                    entry = doc.marks.get((*definition.path, "expect", len(raw["expect"]) - 1))
                    if entry:
                        hint = (f"; {field!r} is a key of an 'expect' entry, not of the state: "
                                f"indent it to column {entry[1]}, under the entry at line "
                                f"{entry[0]}")
            if hint:
                self.errors[i] = ScenarioError(error.message + hint, file=error.file,
                                               line=error.line, col=error.col, path=error.path)

    def loc(self, path: Path) -> Loc:
        line, col = self.doc.where(path)
        return Loc(self.doc.file, line, col, format_path(path))

    def convert(self, data: Any, type_: Any, path: Path) -> Any:
        try:
            return msgspec.convert(data, type_)
        except msgspec.ValidationError as exc:
            message, sub = split_msgspec_error(str(exc))
            self.fail((*path, *sub), message)
            return None

    # -- files --------------------------------------------------------------------------------

    def gather(self, doc: Located, stack: tuple[str, ...], seen: set[str]) -> list[Located]:
        """`doc` and the files it includes, included ones first (depth first)."""
        data = doc.data
        out: list[Located] = []
        includes = data.get("include") if isinstance(data, dict) else None
        if includes is not None:
            self.doc = doc
            names = self.convert(includes, list[str], ("include",)) or []
            for i, relative in enumerate(names):
                target = _join(doc.file, relative)
                if target in stack:
                    chain = " -> ".join([*stack[stack.index(target):], target])
                    self.fail(("include", i), f"include loop: {chain}")
                    continue
                if target in seen:
                    continue
                seen.add(target)
                try:
                    text = FsPath(target).read_text(encoding="utf-8")
                except OSError as exc:
                    self.doc = doc
                    self.fail(("include", i), f"cannot read the included file {relative!r} "
                                              f"({target}): {exc.strerror}")
                    continue
                try:
                    sub = load_located(text, target)
                except ScenarioError as exc:
                    self.errors.append(exc)
                    continue
                if not isinstance(sub.data, dict):
                    self.errors.append(sub.error((), "an included file must be a mapping with "
                                                     "intents, globals, states or settings"))
                    continue
                self.info.files.append(target)
                out += self.gather(sub, (*stack, target), seen)
        out.append(doc)
        return out

    # -- the whole file -----------------------------------------------------------------------

    def compile(self, read_limit: int = READ_LIMIT) -> Machine:
        root = self.root
        data = root.data
        if not isinstance(data, dict):
            raise root.error((), "a scenario file must be a mapping with name, version, start "
                                 "and states")
        self.info.top = self.loc(())
        files = self.gather(root, (root.file,), {root.file})
        self.doc = root
        sections = ("states", "intents", "globals", "settings")
        head = {k: v for k, v in data.items() if k not in sections}
        top = self.convert(head, Scenario, ()) or self.salvage(head, Scenario) or Scenario()
        for key in ("name", "version", "start"):
            if key not in data:
                self.fail((), f"missing required field {key!r}")
        self.languages = self.declared_languages(top)
        self.info.languages = self.languages

        states: dict[str, _Def] = {}
        intents: dict[str, _Def] = {}
        handlers: dict[str, _Def] = {}
        settings: dict[str, _Def] = {}
        for doc in files:
            self.doc = doc
            body = doc.data
            for key, into in (("states", states), ("intents", intents), ("settings", settings)):
                raw = body.get(key)
                if raw is None:
                    continue
                if not isinstance(raw, dict):
                    what = {"states": "state names to states", "intents": "intent names to "
                            "lists of patterns", "settings": "setting names to values"}[key]
                    self.fail((key,), f"must be a mapping of {what}")
                    continue
                for name, value in raw.items():
                    into[name] = _Def(doc, (key, name), value)
                    if key == "states":
                        if doc is root:
                            self.info.own_states.add(name)
                        else:
                            self.info.own_states.discard(name)
            raw = body.get("globals")
            if raw is not None:
                if not isinstance(raw, list):
                    self.fail(("globals",), "must be a list of handlers")
                else:
                    for i, value in enumerate(raw):
                        name = value.get("name") or value.get("intent") if isinstance(
                            value, dict) else None
                        key = str(name) if name else f"{doc.file}#{i}"
                        handlers[key] = _Def(doc, ("globals", i), value)
        self.doc = root
        if not states:
            if "states" in data:
                self.fail(("states",), "must be a mapping of state names to states")
            else:
                self.fail((), "missing required field 'states'")
        if not states:
            self.raise_errors()

        # A definition that does not convert (a type error, an unknown field) is reported, and
        # what converts once the entries holding its errors are left out (`salvage`) still
        # names its states, variables and handlers: the other definitions are checked against
        # them, so one such error hides none of the others. Only converted ones are compiled.
        parsed_states: dict[str, tuple[_Def, State]] = {}
        broken_states: dict[str, tuple[_Def, State]] = {}
        for name, definition in states.items():
            self.doc = definition.doc
            if not _STATE_NAME.fullmatch(name):
                self.fail(definition.path, f"bad state name {name!r}: use letters, digits, '_' "
                                           "and '-', starting with a letter")
            raw = definition.raw if definition.raw is not None else {}
            first = len(self.errors)
            state = self.convert(raw, State, definition.path)
            if state is not None:
                parsed_states[name] = (definition, state)
            else:
                self.indentation_hints(first, name, definition, states)
                broken_states[name] = (definition, self.salvage(raw, State) or State())
        parsed_intents: dict[str, tuple[_Def, dict[str, list[IntentPattern]]]] = {}
        for name, definition in intents.items():
            self.doc = definition.doc
            if not _KIND.fullmatch(name.replace("-", "_")):
                self.fail(definition.path, f"bad intent name {name!r}: use lower-case letters, "
                                           "digits, '_' and '-'")
            parsed_intents[name] = (definition, self.intent_patterns(definition))
        parsed_globals: list[tuple[_Def, Global]] = []
        broken_globals: list[tuple[_Def, Global]] = []
        for definition in handlers.values():
            self.doc = definition.doc
            handler = self.convert(definition.raw, Global, definition.path)
            if handler is not None:
                parsed_globals.append((definition, handler))
            else:
                broken_globals.append((definition, self.salvage(definition.raw, Global)
                                       or Global()))
        merged: Settings | None = Settings()
        for key, definition in settings.items():
            self.doc = definition.doc
            one = self.convert({key: definition.raw}, Settings, ("settings",))
            if one is not None and merged is not None:
                setattr(merged, key, getattr(one, key))
        assert merged is not None
        self.settings = merged
        self.setting_defs = settings

        self.names = set(parsed_states) | set(broken_states)
        self.collect_vars(parsed_states | broken_states, parsed_intents,
                          parsed_globals + broken_globals)
        self.intent_defs = parsed_intents
        self.intents: dict[str, AnyOf] = {}
        self.intent_stack: list[str] = []
        for name in parsed_intents:
            self.intent(name, None)

        self.doc = root
        if top.start is not None and top.start not in self.names:
            self.fail(("start",), self.unknown_state(top.start))
        expire = self.expire_setting()
        self.globals = self.compile_globals(parsed_globals)
        self.global_names |= {h.name or h.intent or "" for _, h in broken_globals}
        nodes: dict[str, Node] = {}
        for name, (definition, state) in parsed_states.items():
            self.doc = definition.doc
            self.info.states[name] = self.loc(definition.path)
            nodes[name] = self.node(name, state, definition.path)
        self.check_webhook_lookups(nodes, parsed_states, parsed_globals)
        self.raise_errors()
        nodes = self.prune(nodes, top.start or "", expire)
        self.check_loops(nodes, parsed_states)
        self.raise_errors()
        assert top.name is not None and top.version is not None and top.start is not None
        rule = self.settings.language or LanguageSettings()
        detect = None
        if len(self.languages) > 1 and rule.detect:
            detect = LanguageRule(rule.texts, rule.confidence)
        return Machine(top.name, top.version, top.start, nodes, expire=expire,
                       description=top.description, info=self.info, read_limit=read_limit,
                       languages=self.languages, detect=detect)

    # -- languages ----------------------------------------------------------------------------

    def declared_languages(self, top: Scenario) -> tuple[str, ...]:
        if top.languages is None:
            return DEFAULT_LANGUAGES
        if not top.languages:
            if self.root.data.get("languages"):  # its entries were wrong: already reported
                return DEFAULT_LANGUAGES
            self.fail(("languages",), "an empty list: name at least one language (en, es...), "
                                      "or leave 'languages' out for English only")
            return DEFAULT_LANGUAGES
        seen: list[str] = []
        for i, code in enumerate(top.languages):
            if code in seen:
                self.fail(("languages", i), f"{code!r} is declared twice")
            else:
                seen.append(code)
        return tuple(seen)

    def language_key(self, key: Any, path: Path) -> str | None:
        """`key` of a per-language mapping, if it is a declared language. A language the
        scenario does not declare is an error in its own file and ignored in an included one
        (a shared file may serve scenarios that speak more languages)."""
        if isinstance(key, str) and key in self.languages:
            return key
        if self.doc is self.root or not (isinstance(key, str) and _LANGUAGE.fullmatch(key)):
            declared = ", ".join(self.languages)
            hint = ("" if isinstance(key, str) and _LANGUAGE.fullmatch(key) else
                    "; a per-language mapping has language codes as keys")
            self.fail((*path, key), f"{key!r} is not a declared language (the scenario's "
                                    f"'languages': {declared}){hint}")
        return None

    def intent_patterns(self, definition: _Def) -> dict[str, list[IntentPattern]]:
        """An intent's patterns by language: a plain list is the default language's."""
        raw = definition.raw
        default = self.languages[0]
        if not isinstance(raw, dict):
            patterns = self.convert(raw, list[IntentPattern], definition.path)
            if patterns is None:
                return {default: self.salvage(raw, list[IntentPattern]) or []}
            if not patterns:
                self.fail(definition.path, "an empty list: give at least one pattern")
            return {default: patterns}
        out: dict[str, list[IntentPattern]] = {}
        for key, value in raw.items():
            language = self.language_key(key, definition.path)
            if language is None:
                continue
            path = (*definition.path, language)
            patterns = self.convert(value, list[IntentPattern], path)
            if patterns is None:
                patterns = self.salvage(value, list[IntentPattern]) or []
            elif not patterns:
                self.fail(path, "an empty list: give at least one pattern")
            out[language] = patterns
        if not raw:
            self.fail(definition.path, "an empty mapping: give the patterns of at least one "
                                       "language")
        return out

    # -- names --------------------------------------------------------------------------------

    def collect_vars(self, states: dict[str, tuple[_Def, State]],
                     intents: dict[str, tuple[_Def, dict[str, list[IntentPattern]]]],
                     handlers: list[tuple[_Def, Global]]) -> None:
        known = set(CONTEXT_VARS)
        kinds: set[str] = set()
        calls: set[str] = set()

        def from_pattern(pattern: Pattern) -> None:
            if pattern.regex:
                with contextlib.suppress(re.error):  # reported where it is compiled
                    known.update(re.compile(pattern.regex).groupindex)
            if isinstance(pattern.number, NumberMatch) and pattern.number.capture:
                known.add(pattern.number.capture)

        def from_reply(reply: Reply | LookupReply | WebhookReply) -> None:
            known.update((reply.set or {}).keys())
            if isinstance(reply, Reply):
                from_pattern(reply)
                if reply.capture:
                    known.add(reply.capture)
                if reply.lookup:
                    kinds.add(reply.lookup)

        for _, state in states.values():
            known.update((state.set or {}).keys())
            if state.lookup:
                kinds.add(state.lookup)
            if state.split is not None:
                known.add(state.split.record)
            for reply in state.expect or ():
                from_reply(reply)
            for lookup_reply in state.on_lookup or ():
                from_reply(lookup_reply)
                if lookup_reply.kind:
                    kinds.add(lookup_reply.kind)
            if state.webhook is not None:
                calls.add(state.webhook.call)
            for webhook_reply in state.on_webhook or ():
                from_reply(webhook_reply)
        for _, handler in handlers:
            from_reply(handler)
        for _, by_language in intents.values():
            for patterns in by_language.values():
                for pattern in patterns:
                    if isinstance(pattern, Pattern):
                        from_pattern(pattern)
        self.known_vars = known
        self.lookup_kinds = kinds
        self.webhook_calls = calls

    def known(self, name: str) -> bool:
        prefix = name.split(".", 1)[0]
        return (name in self.known_vars or prefix in self.lookup_kinds
                or (prefix in self.webhook_calls and "." in name))

    @staticmethod
    def unknown_kind(kind: str) -> str:
        close = difflib.get_close_matches(kind, sorted(LOOKUP_KINDS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (f"unknown lookup kind {kind!r}: {hint}the runtime answers "
                + ", ".join(repr(k) for k in LOOKUP_KINDS))

    def unknown_state(self, name: str) -> str:
        close = difflib.get_close_matches(name, sorted(self.names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown state {name!r}{hint}"

    def target(self, name: str, path: Path) -> str:
        if name not in self.names:
            self.fail(path, self.unknown_state(name))
        return name

    def variable(self, name: str, path: Path) -> str:
        if not _VAR_NAME.fullmatch(name):
            self.fail(path, f"bad variable name {name!r}: use letters, digits and '_', with at "
                            "most one dot")
        return name

    # -- templates and actions ----------------------------------------------------------------

    def template(self, text: str, path: Path, owner: str | None = None) -> Template:
        try:
            template = Template(text)
        except ValueError as exc:
            self.fail(path, str(exc))
            return Template("")
        for name in template.names:
            if not self.known(name):
                self.fail(path, f"unknown placeholder {{{name}}}: known are "
                                f"{', '.join(sorted(self.known_vars))}")
        if owner is not None:
            self.info.messages.append((self.loc(path), owner, template))
        return template

    def localized(self, value: Any, path: Path, owner: str,
                  compile_one: Callable[[Any, Path], _T]) -> tuple[_T | None, dict[str, _T]]:
        """A message field that may be given per language: (the default language's, the
        others' by language). A plain value is the default language's."""
        default = self.languages[0]
        if value is None:
            return None, {}
        if not isinstance(value, dict):
            self.info.texts.append((self.loc(path), owner, frozenset({default})))
            return compile_one(value, path), {}
        given: dict[str, _T] = {}
        for key, one in value.items():
            language = self.language_key(key, path)
            if language is not None:
                given[language] = compile_one(one, (*path, language))
        if not value:
            self.fail(path, "an empty mapping: give the text of at least one language")
        self.info.texts.append((self.loc(path), owner, frozenset(given)))
        # without the default language's text, the default language gets the first one given
        first = given.pop(default) if default in given else next(iter(given.values()), None)
        return first, given

    def say(self, say: Any, path: Path, owner: str) -> tuple[tuple[Template, ...], ...]:
        if say is None:
            return ()
        variants = [say] if isinstance(say, str) else say
        if not variants:
            self.fail(path, "an empty list: give at least one message")
        out: list[tuple[Template, ...]] = []
        for i, variant in enumerate(variants):
            vpath: Path = path if isinstance(say, str) else (*path, i)
            if isinstance(variant, str):
                out.append((self.template(variant, vpath, owner),))
            elif not variant:
                self.fail(vpath, "an empty list of messages")
            else:
                out.append(tuple(self.template(m, (*vpath, j), owner)
                                 for j, m in enumerate(variant)))
        return tuple(out)

    def actions(self, spec: State | Reply | LookupReply, path: Path, owner: str) -> Actions:
        assign = tuple((self.variable(k, (*path, "set", k)),
                        self.template(str(v), (*path, "set", k)))
                       for k, v in (spec.set or {}).items())
        tags: tuple[str, ...] = ()
        if spec.tag is not None:
            tags = (spec.tag,) if isinstance(spec.tag, str) else tuple(spec.tag)
            for i, tag in enumerate(tags):
                if not tag.strip():
                    self.fail((*path, "tag") if isinstance(spec.tag, str) else (*path, "tag", i),
                              "an empty tag")
        lookup = getattr(spec, "lookup", None)
        if lookup is not None and not _KIND.fullmatch(lookup):
            self.fail((*path, "lookup"), f"bad lookup kind {lookup!r}: use lower-case letters, "
                                         "digits and '_'")
        elif lookup is not None and lookup not in LOOKUP_KINDS:
            self.fail((*path, "lookup"), self.unknown_kind(lookup))
        for key, template in assign:
            if key == "language" and not template.names and template.source not in \
                    self.languages:
                self.fail((*path, "set", key), f"{template.source!r} is not a declared language "
                                               f"(the scenario's 'languages': "
                                               f"{', '.join(self.languages)})")

        def text(value: str, where: Path) -> Template:
            return self.template(value, where, owner)

        def say(value: Any, where: Path) -> tuple[tuple[Template, ...], ...]:
            return self.say(value, where, owner)

        opt_out, opt_out_in = self.localized(getattr(spec, "opt_out", None),
                                             (*path, "opt_out"), owner, text)
        opt_in, opt_in_in = self.localized(getattr(spec, "opt_in", None), (*path, "opt_in"),
                                           owner, text)
        said, said_in = self.localized(spec.say, (*path, "say"), owner, say)
        return Actions(
            assign=assign, tags=tags, lookup=lookup, opt_out=opt_out, opt_in=opt_in,
            say=said or (), languages=tuple(
                (language, said_in.get(language, ()), opt_out_in.get(language),
                 opt_in_in.get(language))
                for language in self.languages[1:]
                if language in said_in or language in opt_out_in or language in opt_in_in))

    def conditions(self, spec: ConditionSpec | list[ConditionSpec] | None, path: Path
                   ) -> tuple[Condition, ...]:
        if spec is None:
            return ()
        specs = [spec] if isinstance(spec, ConditionSpec) else spec
        out = []
        for i, one in enumerate(specs):
            cpath = path if isinstance(spec, ConditionSpec) else (*path, i)
            if not self.known(one.var):
                close = difflib.get_close_matches(one.var, sorted(self.known_vars), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail((*cpath, "var"), f"unknown variable {one.var!r}{hint}")
            tests = [k for k in ("equals", "not_equals", "in_", "exists", "lt", "le", "gt", "ge")
                     if getattr(one, k) is not None]
            if not tests:
                self.fail(cpath, "give a test: equals, not_equals, in, exists, lt, le, gt or ge")

            def text(value: Any) -> str | None:
                if value is None:
                    return None
                if isinstance(value, bool):
                    return "true" if value else "false"
                return str(value)

            out.append(Condition(
                one.var, equals=text(one.equals), not_equals=text(one.not_equals),
                in_=tuple(text(v) or "" for v in one.in_) if one.in_ is not None else None,
                exists=one.exists, lt=one.lt, le=one.le, gt=one.gt, ge=one.ge))
        return tuple(out)

    # -- matchers -----------------------------------------------------------------------------

    def words(self, values: list[Any], path: Path) -> list[str]:
        out = []
        for i, value in enumerate(values):
            word = str(value)
            if not fold(word).strip():
                self.fail((*path, i), "an empty keyword")
            else:
                out.append(word)
        if not values:
            self.fail(path, "an empty list: give at least one word")
        return out

    def matcher(self, spec: Pattern, path: Path, *, otherwise: bool = False,
                capture: str | None = None, what: str = "an expect entry") -> Matcher:
        kinds = [k for k in MATCHERS if getattr(spec, k) is not None]
        if otherwise:
            kinds.append("otherwise")
        if len(kinds) != 1:
            self.fail(path, f"give exactly one of {', '.join(MATCHERS)} or 'otherwise: true' in "
                            f"{what}; found {', '.join(kinds) or 'none'}")
            return Words([])
        kind = kinds[0]
        if capture is not None:
            self.variable(capture, (*path, "capture"))
        if kind == "otherwise":
            return Always(capture)
        value = getattr(spec, kind)
        kpath: Path = (*path, kind)
        if kind == "keywords":
            return Words(self.words(value, kpath), capture)
        if kind == "all":
            return AllWords(self.words(value, kpath), capture)
        if kind == "phrase":
            return Words(self.words([value] if isinstance(value, str) else value, kpath),
                         capture)
        if kind == "fuzzy":
            words = self.words(value, kpath)
            for i, word in enumerate(words):
                if not WORD.findall(fold(word)):
                    self.fail((*kpath, i), f"{word!r} has no letters or digits to match fuzzily")
            return Fuzzy(words, capture)
        if kind == "regex":
            self.info.regexes.append((self.loc(kpath), value))
            try:
                pattern = re.compile(value, re.IGNORECASE)
            except re.error as exc:
                self.fail(kpath, f"invalid regular expression: {exc}")
                return Words([])
            return Regex(pattern, capture)
        if kind == "number":
            if value is False:
                self.fail(kpath, "write 'number: true' for any number, or give {min, max}")
            if isinstance(value, NumberMatch):
                if value.capture is not None:
                    if capture is not None:
                        self.fail((*kpath, "capture"), "give 'capture' once, here or on the "
                                                       "entry")
                    capture = self.variable(value.capture, (*kpath, "capture"))
                if value.min is not None and value.max is not None and value.min > value.max:
                    self.fail(kpath, f"min ({value.min:g}) is more than max ({value.max:g})")
                return Number(value.min, value.max, capture)
            return Number(None, None, capture)
        if kind == "answer":
            if value not in ("yes", "no"):
                self.fail(kpath, f"must be 'yes' or 'no', got {value!r}")
            return Answer(value, capture)
        if kind == "has":
            if value not in ("media", "phone", "url"):
                self.fail(kpath, f"must be 'media', 'phone' or 'url', got {value!r}")
            return Has(value, capture)
        # intent
        found = self.intent(value, kpath)
        return AnyOf(found.name, found.patterns, capture, by_language=found.by_language)

    def intent(self, name: str, path: Path | None) -> AnyOf:
        """The compiled intent `name` (compiling it, and the intents it uses, on first use)."""
        if name in self.intents:
            return self.intents[name]
        if name not in self.intent_defs:
            if path is not None:
                close = difflib.get_close_matches(name, sorted(self.intent_defs), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = f"; known are {', '.join(sorted(self.intent_defs))}" \
                    if self.intent_defs and not close else ""
                self.fail(path, f"unknown intent {name!r}{hint}{known}")
            return AnyOf(name)
        definition, by_language = self.intent_defs[name]
        if name in self.intent_stack:
            chain = " -> ".join([*self.intent_stack[self.intent_stack.index(name):], name])
            saved = self.doc
            self.doc = definition.doc
            self.fail(definition.path, f"intent loop {chain}: an intent cannot use itself")
            self.doc = saved
            return AnyOf(name)
        self.intent_stack.append(name)
        saved = self.doc
        self.doc = definition.doc
        per_language = isinstance(definition.raw, dict)
        compiled: dict[str, tuple[Matcher, ...]] = {}
        for language, patterns in by_language.items():
            matchers: list[Matcher] = []
            for i, pattern in enumerate(patterns):
                ppath: Path = (*definition.path, language, i) if per_language \
                    else (*definition.path, i)
                if isinstance(pattern, str):
                    if not fold(pattern).strip():
                        self.fail(ppath, "an empty keyword")
                    matchers.append(Words([pattern]))
                else:
                    matchers.append(self.matcher(pattern, ppath, what="an intent pattern"))
            compiled[language] = _merge_words(matchers)
        self.doc = saved
        self.intent_stack.pop()
        default = compiled.pop(self.languages[0], ())
        result = AnyOf(name, default, by_language=compiled)
        self.intents[name] = result
        return result

    # -- entries ------------------------------------------------------------------------------

    def destination(self, reply: Reply | LookupReply, path: Path, *, allow_return: bool = True
                    ) -> str:
        given = [k for k, v in (("goto", reply.goto is not None),
                                ("return", getattr(reply, "return_", False)),
                                ("stay", reply.stay)) if v]
        if len(given) != 1:
            options = "'goto' (a state), 'return: true' or 'stay: true'" if allow_return \
                else "'goto' (a state) or 'stay: true'"
            self.fail(path, f"give exactly one of {options}; found {', '.join(given) or 'none'}")
            return STAY
        if given[0] == "goto":
            return self.target(reply.goto or "", (*path, "goto"))
        return RETURN if given[0] == "return" else STAY

    def entry(self, reply: Reply, path: Path, trigger: str, owner: str) -> Entry:
        matcher = self.matcher(reply, path, otherwise=reply.otherwise, capture=reply.capture)
        return Entry(matcher=matcher, target=self.destination(reply, path), trigger=trigger,
                     actions=self.actions(reply, path, owner),
                     when=self.conditions(reply.if_, (*path, "if")))

    def compile_globals(self, handlers: list[tuple[_Def, Global]]) -> list[Entry]:
        out: list[Entry] = []
        names: set[str] = set()
        for definition, handler in handlers:
            self.doc = definition.doc
            path = definition.path
            name = handler.name or handler.intent or ""
            if not name:
                self.fail(path, "give the handler a 'name' (it names the handler in stats and "
                                "in skip_globals)")
            names.add(name)
            if handler.otherwise:
                self.fail((*path, "otherwise"), "a global handler cannot use 'otherwise': it "
                                                "would take every reply in every state")
            entry = self.entry(handler, path, f"global:{name}", "globals")
            if handler.opt_out is not None:
                self.info.opt_out = True
            out.append(Entry(matcher=entry.matcher, target=entry.target, trigger=entry.trigger,
                             actions=entry.actions, when=entry.when, name=name,
                             priority=handler.priority,
                             while_paused=handler.opt_out is not None
                             or handler.opt_in is not None or handler.while_handed_off))
        self.global_names = names
        return sorted(out, key=lambda e: -e.priority)  # stable: ties keep file order

    # -- settings -----------------------------------------------------------------------------

    def duration(self, value: Any, path: Path, *, zero: bool = False) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(path, str(exc))
            return 0.0
        if seconds <= 0 and not zero:
            self.fail(path, "must be longer than zero")
        return seconds

    @contextlib.contextmanager
    def in_settings(self, key: str) -> Iterator[Path]:
        """Report errors inside `with` at the `settings` entry `key` (in its own file)."""
        definition = self.setting_defs[key]
        saved, self.doc = self.doc, definition.doc
        try:
            yield definition.path
        finally:
            self.doc = saved

    def expire_setting(self) -> Expiry | None:
        spec = self.settings.expire
        if spec is None:
            return None
        with self.in_settings("expire") as path:
            after = self.duration(spec.after, (*path, "after"))
            goto = self.target(spec.goto, (*path, "goto")) if spec.goto is not None else None
        return Expiry(after, goto)

    def busy(self, spec: Any, path: Path) -> Busy | None:
        if spec is None:
            return None
        low = self.duration(spec.min, (*path, "min"), zero=True)
        high = self.duration(spec.max, (*path, "max"), zero=True)
        if low > high:
            self.fail(path, f"min ({spec.min}) is longer than max ({spec.max})")
        return Busy(spec.chance, low, high)

    # -- states -------------------------------------------------------------------------------

    def node(self, name: str, state: State, base: Path) -> Node:
        exits = [k for k in EXITS if getattr(state, k if k not in ("if",) else "if_") is not None]
        if len(exits) != 1:
            self.fail(base, "a state needs exactly one of 'expect' (wait for a reply), 'goto' "
                            "(move on), 'if' (choose by a variable), 'split' (choose at random), "
                            "'handoff' (to a person) or 'end' (finish with an outcome); found "
                            f"{', '.join(exits) or 'none'}")
        kind = exits[0] if exits else EXPECT
        if state.timeout is not None and state.expect is None:
            self.fail((*base, "timeout"), "a timeout only makes sense on a state with 'expect'")
        if state.on_lookup is not None and state.expect is None:
            self.fail((*base, "on_lookup"), "'on_lookup' only makes sense on a state with "
                                            "'expect' (a state that waits)")
        for key, attr in (("then", "then"), ("else", "else_")):
            if getattr(state, attr) is not None and state.if_ is None:
                self.fail((*base, key), f"'{key}' only makes sense with 'if'")
        actions = self.actions(state, base, name)
        on_webhook = self.webhook_part(state, base, name)
        if state.webhook is not None:
            actions = dataclasses.replace(actions, webhook=self.webhook(state.webhook,
                                                                        (*base, "webhook")))
        expect = tuple(self.entry(r, (*base, "expect", i), f"expect[{i}]", name)
                       for i, r in enumerate(state.expect or ()))
        if state.expect is not None:
            if not state.expect:
                self.fail((*base, "expect"), "an empty list: add at least an 'otherwise' entry")
            elif not any(e.otherwise for e in expect):
                self.fail((*base, "expect"), "no 'otherwise' entry: a reply that matches nothing "
                                             "would get no answer")
            else:
                first = next(i for i, e in enumerate(expect) if e.otherwise)
                if first != len(expect) - 1:
                    self.fail((*base, "expect", first + 1), "unreachable: it comes after "
                                                            "'otherwise', which matches everything")
        timeout = None
        if state.timeout is not None:
            seconds = self.duration(state.timeout.after, (*base, "timeout", "after"))
            timeout = Timeout(seconds,
                              self.target(state.timeout.goto, (*base, "timeout", "goto")))
        on_lookup = tuple(self.lookup_entry(r, (*base, "on_lookup", i), i, name)
                          for i, r in enumerate(state.on_lookup or ()))
        if state.end is not None and not state.end.strip():
            self.fail((*base, "end"), "the outcome must not be empty")
        condition: tuple[Condition, ...] = ()
        then = otherwise = None
        if state.if_ is not None:
            condition = self.conditions(state.if_, (*base, "if"))
            for key, value in (("then", state.then), ("else", state.else_)):
                if value is None:
                    self.fail(base, f"'if' needs '{key}': the state to go to when the test "
                                    f"{'holds' if key == 'then' else 'does not hold'}")
            then = self.target(state.then, (*base, "then")) if state.then else None
            otherwise = self.target(state.else_, (*base, "else")) if state.else_ else None
        split: tuple[Branch, ...] = ()
        record = experiment = ""
        if state.split is not None:
            spath: Path = (*base, "split")
            record = self.variable(state.split.record, (*spath, "record"))
            if not state.split.branches:
                self.fail((*spath, "branches"), "an empty list: give at least one branch")
            seen: set[str] = set()
            branches = []
            for i, branch in enumerate(state.split.branches):
                bname = branch.name or branch.goto
                if bname in seen:
                    self.fail((*spath, "branches", i), f"two branches named {bname!r}: give "
                                                       "each a different 'name'")
                seen.add(bname)
                branches.append(Branch(bname, branch.weight,
                                       self.target(branch.goto, (*spath, "branches", i, "goto"))))
            split = tuple(branches)
            if state.split.experiment is not None:
                experiment = state.split.experiment
                epath: Path = (*spath, "experiment")
                if not _EXPERIMENT.fullmatch(experiment):
                    self.fail(epath, f"bad experiment name {experiment!r}: use letters, digits, "
                                     "'_' and '-'")
                elif self.experiments.setdefault(experiment, name) != name:
                    self.fail(epath, f"experiment {experiment!r} is already the split of state "
                                     f"{self.experiments[experiment]!r}: one split per "
                                     "experiment")
        resume = reason = None
        priority = "normal"
        if state.handoff is not None:
            resume = self.target(state.handoff.resume, (*base, "handoff", "resume"))
            reason = state.handoff.reason
            priority = state.handoff.priority
        skipped: set[str] = set()
        if state.skip_globals is not None:
            names = [state.skip_globals] if isinstance(state.skip_globals, str) else \
                state.skip_globals
            for i, skip in enumerate(names):
                spath = (*base, "skip_globals") if isinstance(state.skip_globals, str) else \
                    (*base, "skip_globals", i)
                if skip != "all" and skip not in self.global_names:
                    close = difflib.get_close_matches(skip, sorted(self.global_names), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.fail(spath, f"unknown global handler {skip!r}{hint}")
            skipped = set(names)
        handlers = () if "all" in skipped or kind not in (EXPECT, HANDOFF) else tuple(
            e for e in self.globals if e.name not in skipped)
        settings = self.settings
        merge = 0.0
        if state.merge is not None:
            merge = self.duration(state.merge, (*base, "merge"), zero=True)
        elif settings.merge is not None:
            with self.in_settings("merge") as spath:
                merge = self.duration(settings.merge, spath, zero=True)
        busy = None
        if state.busy is not None:
            busy = self.busy(state.busy, (*base, "busy"))
        elif settings.busy is not None:
            with self.in_settings("busy") as spath:
                busy = self.busy(settings.busy, spath)
        visits = None
        if state.visits is not None:
            visits = VisitLimit(state.visits.max,
                                self.target(state.visits.goto, (*base, "visits", "goto")))
        elif settings.visits is not None and kind != "end" and settings.visits.goto != name:
            with self.in_settings("visits") as spath:
                visits = VisitLimit(settings.visits.max,
                                    self.target(settings.visits.goto, (*spath, "goto")))
        delay = state.delay if state.delay is not None else (
            settings.delay if settings.delay is not None else 1.0)
        return Node(
            name=name, kind=kind, actions=actions, expect=expect, timeout=timeout,
            on_lookup=on_lookup,
            goto=self.target(state.goto, (*base, "goto")) if state.goto is not None else None,
            end=state.end, condition=condition, then=then, otherwise=otherwise, split=split,
            record=record, experiment=experiment,
            resume=resume, reason=reason or "", priority=priority, visits=visits,
            globals=handlers,
            merge=merge, delay=delay, busy=busy, on_webhook=on_webhook)

    def lookup_entry(self, reply: LookupReply, path: Path, index: int, owner: str
                     ) -> LookupEntry:
        if reply.otherwise and (reply.kind or reply.ok is not None or reply.field):
            self.fail(path, "'otherwise' takes every answer: leave out kind, ok and field")
        if reply.kind is not None and not _KIND.fullmatch(reply.kind):
            self.fail((*path, "kind"), f"bad lookup kind {reply.kind!r}")
        elif reply.kind is not None and reply.kind not in LOOKUP_KINDS:
            self.fail((*path, "kind"), self.unknown_kind(reply.kind))
        return LookupEntry(target=self.destination(reply, path, allow_return=False),
                           trigger=f"lookup[{index}]", kind=reply.kind, ok=reply.ok,
                           field=reply.field, when=self.conditions(reply.if_, (*path, "if")),
                           actions=self.actions(reply, path, owner))

    # -- webhooks -----------------------------------------------------------------------------

    def webhook_part(self, state: State, base: Path, owner: str) -> tuple[WebhookEntry, ...]:
        """The state's `on_webhook` entries, once `webhook` and its neighbours are checked."""
        if state.webhook is not None and state.expect is None:
            self.fail((*base, "webhook"), "a state that calls a webhook must wait for its "
                                          "answer: give it 'expect' ('on_webhook' takes the "
                                          "answer while it waits)")
        if state.webhook is not None and state.lookup is not None:
            self.fail((*base, "webhook"), "a state can ask for a lookup or call a webhook, not "
                                          "both (one answer is awaited at a time): ask for the "
                                          "lookup in an earlier state")
        if state.on_webhook is not None and state.webhook is None:
            self.fail((*base, "on_webhook"), "'on_webhook' needs 'webhook' in the same state: "
                                             "nothing else is answered there")
        return tuple(self.webhook_entry(r, (*base, "on_webhook", i), i, owner)
                     for i, r in enumerate(state.on_webhook or ()))

    def webhook(self, spec: WebhookCall, path: Path) -> tuple[str, tuple[str, ...]]:
        """(name, variables) of a `webhook` action."""
        call = spec.call
        taken = {n.split(".", 1)[0] for n in CONTEXT_VARS} | set(LOOKUP_KINDS)
        if not _KIND.fullmatch(call):
            self.fail((*path, "call"), f"bad webhook name {call!r}: use lower-case letters, "
                                       "digits and '_' (a [webhooks.NAME] of the config)")
        elif call in taken:
            self.fail((*path, "call"), f"a webhook cannot be named {call!r}: its answer's "
                                       f"variables ({call}.field) would mix with the "
                                       f"conversation's own; rename it in the config")
        if len(spec.send) > MAX_WEBHOOK_VARS:
            self.fail((*path, "send"), f"{len(spec.send)} variables: send at most "
                                       f"{MAX_WEBHOOK_VARS}")
        names: list[str] = []
        for i, var in enumerate(spec.send):
            where: Path = (*path, "send", i)
            self.variable(var, where)
            if var in names:
                self.fail(where, f"{var!r} is sent twice")
            elif not self.known(var):
                close = difflib.get_close_matches(var, sorted(self.known_vars), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(where, f"unknown variable {var!r}{hint}: send variables the "
                                 "scenario sets, captures or is given (persona.*, city.*)")
            names.append(var)
        return call, tuple(names)

    def webhook_entry(self, reply: WebhookReply, path: Path, index: int, owner: str
                      ) -> WebhookEntry:
        if reply.otherwise and (reply.ok is not None or reply.error or reply.field):
            self.fail(path, "'otherwise' takes every answer: leave out ok, error and field")
        if reply.error is not None and reply.ok:
            self.fail((*path, "error"), "an answer with an error is not ok: leave out "
                                        "'ok: true'")
        if reply.field is not None and reply.ok is False:
            self.fail((*path, "field"), "a failed call has no reply fields: leave out "
                                        "'ok: false' or 'field'")
        if reply.field is not None and not WEBHOOK_FIELD.fullmatch(reply.field):
            self.fail((*path, "field"), f"bad field name {reply.field!r}: a top-level field "
                                        "of the JSON reply (letters, digits and '_')")
        return WebhookEntry(target=self.destination(reply, path, allow_return=False),
                            trigger=f"webhook[{index}]", ok=reply.ok, error=reply.error,
                            field=reply.field, when=self.conditions(reply.if_, (*path, "if")),
                            actions=self.actions(reply, path, owner))

    def check_webhook_lookups(self, nodes: dict[str, Node],
                              states: dict[str, tuple[_Def, State]],
                              handlers: list[tuple[_Def, Global]]) -> None:
        """A reply that asks for a lookup must not go straight to a state that calls a
        webhook: one step would await two answers."""
        replies = [(definition.doc, (*definition.path, "expect", i), reply)
                   for definition, state in states.values()
                   for i, reply in enumerate(state.expect or ())]
        replies += [(definition.doc, definition.path, handler)
                    for definition, handler in handlers]
        saved = self.doc
        for doc, path, reply in replies:
            target = nodes.get(reply.goto or "")
            if reply.lookup and target is not None and target.actions.webhook is not None:
                self.doc = doc
                self.fail((*path, "lookup"), f"this reply asks for a lookup and goes to "
                                             f"state {target.name!r}, which calls a webhook: "
                                             "one step cannot await both answers; ask for the "
                                             "lookup in an earlier state")
        self.doc = saved

    # -- the graph ----------------------------------------------------------------------------

    def prune(self, nodes: dict[str, Node], start: str, expire: Expiry | None
              ) -> dict[str, Node]:
        """Drop states that only included files define and that nothing reaches."""
        seen = {start}
        todo = [start]
        if expire is not None and expire.target is not None:
            seen.add(expire.target)
            todo.append(expire.target)
        while todo:
            node = nodes.get(todo.pop())
            if node is None:
                continue
            for target, _ in node.exits():
                if target in nodes and target not in seen:
                    seen.add(target)
                    todo.append(target)
        keep = {n: v for n, v in nodes.items() if n in seen or n in self.info.own_states}
        for name in set(nodes) - set(keep):
            self.info.states.pop(name, None)
        self.info.messages = [m for m in self.info.messages if m[1] == "globals" or m[1] in keep]
        return keep

    def check_loops(self, nodes: dict[str, Node], states: dict[str, tuple[_Def, State]]
                    ) -> None:
        """States that move on without waiting must not form a ring: it would never stop."""
        edges: dict[str, list[tuple[str, str]]] = {}
        for name, node in nodes.items():
            out = []
            if node.visits is not None:
                out.append((node.visits.target, "visits"))
            if node.kind == GOTO and node.goto:
                out.append((node.goto, "goto"))
            elif node.kind == IF:
                out += [(t, "if") for t in (node.then, node.otherwise) if t]
            elif node.kind == SPLIT:
                out += [(b.target, "split") for b in node.split]
            edges[name] = out
        reported: set[str] = set()
        done: set[str] = set()

        def visit(name: str, trail: list[tuple[str, str]]) -> None:
            names = [n for n, _ in trail]
            if name in names:
                ring = trail[names.index(name):]
                if not reported & {n for n, _ in ring}:
                    reported.update(n for n, _ in ring)
                    first, how = ring[0]
                    definition = states[first][0]
                    self.doc = definition.doc
                    path = (*definition.path, how)
                    chain = " -> ".join([*(n for n, _ in ring), name])
                    self.fail(path, f"'{how}' loop {chain}: the conversation would never wait "
                                    "for a reply")
                return
            if name in done or name not in edges:
                return
            for target, how in edges[name]:
                visit(target, [*trail, (name, how)])
            done.add(name)

        for name in nodes:
            visit(name, [])
        self.doc = self.root
