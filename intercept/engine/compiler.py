"""Scenario YAML -> `Machine`, with every error located as ``file:line:col: path: message``."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path as FsPath
from typing import Any

import msgspec

from ..errors import ScenarioError, ScenarioErrors
from .durations import parse_duration
from .machine import _WORD, Machine, Matcher, Node, normalise
from .model import Reply, Scenario, State
from .template import Template
from .yamlsource import Located, Path, load_located, split_msgspec_error

# Placeholders every conversation has. persona.* and city.* come from the number's config.
CONTEXT_VARS = frozenset({
    "persona.name", "persona.age", "persona.style",
    "city.name", "city.link", "city.region",
    "message",
})

_STATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def load_scenario(path: str | FsPath) -> Machine:
    """Read and compile one scenario file."""
    path = FsPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    return compile_text(text, file=str(path))


def compile_text(text: str, *, file: str = "<scenario>") -> Machine:
    return _Compiler(load_located(text, file)).compile()


class _Compiler:
    def __init__(self, doc: Located):
        self.doc = doc
        self.errors: list[ScenarioError] = []

    def fail(self, path: Path, message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    def convert(self, data: Any, type_: type, path: Path) -> Any:
        try:
            return msgspec.convert(data, type_)
        except msgspec.ValidationError as exc:
            message, sub = split_msgspec_error(str(exc))
            self.fail((*path, *sub), message)
            return None

    def compile(self) -> Machine:
        data = self.doc.data
        if not isinstance(data, dict):
            raise self.doc.error((), "a scenario file must be a mapping with name, version, "
                                     "start and states")
        states_raw = data.get("states")
        top = self.convert({**data, "states": {}}, Scenario, ())
        if not isinstance(states_raw, dict) or not states_raw:
            if "states" in data:
                self.fail(("states",), "must be a mapping of state names to states")
            else:
                self.fail((), "missing required field 'states'")
            self.raise_errors()
        states: dict[str, State] = {}
        for name, raw in states_raw.items():
            if not _STATE_NAME.fullmatch(name):
                self.fail(("states", name), f"bad state name {name!r}: use letters, digits, "
                                            "'_' and '-', starting with a letter")
            state = self.convert(raw if raw is not None else {}, State, ("states", name))
            if state is not None:
                states[name] = state
        self.raise_errors()
        assert top is not None
        known_vars = set(CONTEXT_VARS)
        for state in states.values():
            known_vars.update((state.set or {}).keys())
            for reply in state.expect or ():
                known_vars.update((reply.set or {}).keys())
                if reply.regex:
                    with contextlib.suppress(re.error):  # reported below
                        known_vars.update(re.compile(reply.regex).groupindex)
        self.known_vars = known_vars
        self.names = set(states)
        if top.start not in states:
            self.fail(("start",), self.unknown_state(top.start))
        nodes = {name: self.node(name, state) for name, state in states.items()}
        self.check_goto_cycles(nodes)
        self.raise_errors()
        return Machine(top.name, top.version, top.start, nodes)

    def raise_errors(self) -> None:
        if self.errors:
            self.errors.sort(key=lambda e: (e.line, e.col))
            raise ScenarioErrors(self.errors)

    def unknown_state(self, name: str) -> str:
        import difflib

        close = difflib.get_close_matches(name, sorted(self.names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown state {name!r}{hint}"

    def target(self, name: str, path: Path) -> str:
        if name not in self.names:
            self.fail(path, self.unknown_state(name))
        return name

    def template(self, text: str, path: Path) -> Template:
        try:
            template = Template(text)
        except ValueError as exc:
            self.fail(path, str(exc))
            return Template("")
        for name in template.names:
            if name not in self.known_vars:
                self.fail(path, f"unknown placeholder {{{name}}}: known are "
                                f"{', '.join(sorted(self.known_vars))}")
        return template

    def assignments(self, values: dict[str, str] | None, path: Path
                    ) -> tuple[tuple[str, Template], ...]:
        return tuple((k, self.template(str(v), (*path, k))) for k, v in (values or {}).items())

    def node(self, name: str, state: State) -> Node:
        base: Path = ("states", name)
        say: list[tuple[Template, ...]] = []
        if state.say is not None:
            variants = [state.say] if isinstance(state.say, str) else state.say
            if not variants:
                self.fail((*base, "say"), "an empty list: give at least one message")
            for i, variant in enumerate(variants):
                vpath: Path = (*base, "say") if isinstance(state.say, str) else (*base, "say", i)
                if isinstance(variant, str):
                    say.append((self.template(variant, vpath),))
                elif not variant:
                    self.fail(vpath, "an empty list of messages")
                else:
                    say.append(tuple(self.template(m, (*vpath, j)) for j, m in enumerate(variant)))
        exits = [k for k in ("expect", "goto", "end") if getattr(state, k) is not None]
        if len(exits) != 1:
            self.fail(base, "a state needs exactly one of 'expect' (wait for a reply), 'goto' "
                            f"(move on) or 'end' (finish with an outcome); found "
                            f"{', '.join(exits) or 'none'}")
        if state.timeout is not None and state.expect is None:
            self.fail((*base, "timeout"), "a timeout only makes sense on a state with 'expect'")
        matchers = tuple(self.matcher(r, (*base, "expect", i))
                         for i, r in enumerate(state.expect or ()))
        if state.expect is not None:
            if not state.expect:
                self.fail((*base, "expect"), "an empty list: add at least an 'otherwise' entry")
            elif not any(m.otherwise for m in matchers):
                self.fail((*base, "expect"), "no 'otherwise' entry: a reply that matches nothing "
                                             "would get no answer")
            else:
                first = next(i for i, m in enumerate(matchers) if m.otherwise)
                if first != len(matchers) - 1:
                    self.fail((*base, "expect", first + 1), "unreachable: it comes after "
                                                            "'otherwise', which matches everything")
        timeout = None
        if state.timeout is not None:
            try:
                seconds = parse_duration(state.timeout.after)
            except ValueError as exc:
                self.fail((*base, "timeout", "after"), str(exc))
                seconds = 0.0
            else:
                if seconds <= 0:
                    self.fail((*base, "timeout", "after"), "must be longer than zero")
            timeout = (seconds, self.target(state.timeout.goto, (*base, "timeout", "goto")))
        if state.end is not None and not state.end.strip():
            self.fail((*base, "end"), "the outcome must not be empty")
        return Node(
            name=name, say=tuple(say), expect=matchers, timeout=timeout,
            goto=self.target(state.goto, (*base, "goto")) if state.goto is not None else None,
            end=state.end, assign=self.assignments(state.set, (*base, "set")))

    def matcher(self, reply: Reply, path: Path) -> Matcher:
        kinds = [k for k in ("keywords", "regex") if getattr(reply, k) is not None]
        if reply.otherwise:
            kinds.append("otherwise")
        if len(kinds) != 1:
            self.fail(path, "give exactly one of 'keywords', 'regex' or 'otherwise: true'; "
                            f"found {', '.join(kinds) or 'none'}")
        goto = self.target(reply.goto, (*path, "goto"))
        assign = self.assignments(reply.set, (*path, "set"))
        if reply.regex is not None:
            try:
                pattern = re.compile(reply.regex, re.IGNORECASE)
            except re.error as exc:
                self.fail((*path, "regex"), f"invalid regular expression: {exc}")
                pattern = None
            return Matcher(goto=goto, regex=pattern, assign=assign)
        if reply.keywords is not None:
            words, phrases, symbols = set(), [], []
            for i, keyword in enumerate(reply.keywords):
                folded = normalise(str(keyword)).strip()
                tokens = _WORD.findall(folded)
                if not folded:
                    self.fail((*path, "keywords", i), "an empty keyword")
                elif not tokens:
                    symbols.append(folded)  # "$", "💰": matched anywhere in the text
                elif len(tokens) == 1:
                    words.add(tokens[0])
                else:
                    phrases.append(f" {' '.join(tokens)} ")
            return Matcher(goto=goto, words=frozenset(words), phrases=tuple(phrases),
                           symbols=tuple(symbols), assign=assign)
        return Matcher(goto=goto, otherwise=True, assign=assign)

    def check_goto_cycles(self, nodes: dict[str, Node]) -> None:
        """A ring of `goto` states would send messages forever without waiting for a reply."""
        reported: set[str] = set()
        for start in nodes:
            seen: list[str] = []
            name: str | None = start
            while name is not None and name in nodes and name not in seen:
                seen.append(name)
                name = nodes[name].goto
            if name is not None and name in seen and name not in reported:
                ring = seen[seen.index(name):]
                reported.update(ring)
                self.fail(("states", name, "goto"),
                          f"'goto' loop {' -> '.join([*ring, name])}: the conversation would "
                          "never wait for a reply")
