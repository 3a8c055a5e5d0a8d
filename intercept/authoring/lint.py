"""`intercept scenario lint`: what compiles but would still go wrong in a live conversation.

Errors (the scenario must not be deployed):

- everything `check` reports (missing states, regexes that do not compile, goto loops...);
- dead ends: a state from which the conversation can never end (no path to an `end`, a
  hand-off or the scenario's expiry);
- loops without an exit: states that send the conversation round in a circle with no way out.

Warnings:

- unreachable states (written in the file, but no path from the start leads there);
- loops that no visit limit bounds (a buyer who keeps replying could keep it going forever);
- a message longer than one SMS: 160 GSM-7 characters, or 70 UCS-2 characters when it has an
  emoji or another character outside the GSM alphabet. Placeholders count at typical lengths
  (`SAMPLE`; a name 10 characters, a link 28), or as their fallback;
- no global handler opts the sender out (STOP);
- an urgent hand-off that says nothing: someone who may be in danger hears nothing until an
  advocate answers (tell them what to do meanwhile, e.g. whom to call);
- a start state that says something and then waits, in a scenario that waits for the other
  side's first text (any scenario not marked `speaks_first`, i.e. not started by a campaign):
  the greeting goes out before that text is read, and the text is then matched against the
  answers the greeting expects, so it mostly falls through to `otherwise`;
- a state that calls a webhook with no `on_webhook` entry for a failed call: a timeout or an
  error would leave the conversation where it is, saying nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..engine import Machine, load_scenario
from ..engine.compiler import Loc
from ..engine.machine import EXPECT, HANDOFF
from ..errors import ScenarioError, ScenarioErrors
from .graph import can_finish, node_edges, reachable, successors

SAMPLE = {
    "persona.name": "Alexandria", "persona.age": "23", "persona.style": "casual",
    "city.name": "Washington DC", "city.link": "https://www.example.org/help",
    "city.region": "US", "message": "ok see u then",
}
"""Placeholder values used to measure messages; other variables count as `FILLER`."""
FILLER = "x" * 10

GSM7_LIMIT = 160
UCS2_LIMIT = 70


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # "error" or "warning"
    file: str
    line: int
    col: int
    path: str
    message: str
    rule: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        path = f"{self.path}: " if self.path else ""
        return f"{where}: {self.severity}: {path}{self.message}"


def _at(loc: Loc | None, file: str, severity: str, message: str, rule: str) -> Finding:
    if loc is None:
        return Finding(severity, file, 0, 0, "", message, rule)
    return Finding(severity, loc.file, loc.line, loc.col, loc.path, message, rule)


def lint_file(path: str | Path, *, speaks_first: bool | Collection[str] = False
              ) -> list[Finding]:
    """Every finding for one scenario file, compile errors included, in file order.
    `speaks_first`: a campaign starts its conversations (outreach), so its start state may
    greet; True, or the names of the scenarios campaigns start."""
    try:
        machine = load_scenario(path)
    except ScenarioErrors as exc:
        return [_from_error(e) for e in exc.errors]
    except ScenarioError as exc:
        return [_from_error(exc)]
    if not isinstance(speaks_first, bool):
        speaks_first = machine.name in speaks_first
    return lint_machine(machine, speaks_first=speaks_first)


def _from_error(error: ScenarioError) -> Finding:
    return Finding("error", error.file, error.line, error.col, error.path, error.message,
                   "check")


def lint_machine(machine: Machine, *, speaks_first: bool = False) -> list[Finding]:
    info = machine.info
    file = getattr(info, "file", machine.name)
    states = getattr(info, "states", {})
    findings: list[Finding] = []
    reached = reachable(machine)
    for name in sorted(getattr(info, "own_states", set()) - reached):
        findings.append(_at(states.get(name), file, "warning",
                            f"unreachable: no path from the start state "
                            f"{machine.start!r} leads to {name!r}", "unreachable"))
    findings += _traps(machine, reached, states, file)
    findings += _unbounded_loops(machine, reached, states, file)
    findings += _long_messages(machine)
    findings += _silent_urgent(machine, reached, states, file)
    findings += _experiments(machine, states, file)
    findings += _webhook_failures(machine, reached, states, file)
    findings += _missing_languages(machine)
    if not speaks_first:
        findings += _greeting_before_first_text(machine, states, file)
    if info is not None and not info.opt_out:
        findings.append(_at(info.top, file, "warning",
                            "no global handler opts the sender out: STOP would not be "
                            "honoured (include shared/compliance.yaml, or add a handler with "
                            "'opt_out')", "stop"))
    order = {f: i for i, f in enumerate(getattr(info, "files", [file]))}
    return sorted(findings, key=lambda f: (order.get(f.file, 99), f.line, f.col, f.message))


def _components(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each in the given node order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component, key=nodes.index))

    for v in nodes:
        if v not in index:
            connect(v)
    return out


def _cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A path round the component, from its first state back to it."""
    start = component[0]
    inside = set(component)
    trail, seen = [start], {start}
    while True:
        options = sorted(graph.get(trail[-1], set()) & inside, key=component.index)
        if (start in options and len(trail) > 1) or options == [start]:
            return [*trail, start]
        fresh = [o for o in options if o not in seen]
        if not fresh:
            return [*trail, start]
        trail.append(fresh[0])
        seen.add(fresh[0])


def _traps(machine: Machine, reached: set[str], states: dict[str, Loc], file: str
           ) -> list[Finding]:
    """Dead ends and loops without an exit: reachable states that can never finish."""
    finishing = can_finish(machine)
    stuck = [n for n in machine.nodes if n in reached and n not in finishing]
    if not stuck:
        return []
    graph = {n: {t for t in successors(machine)[n] if t in machine.nodes} for n in stuck}
    components = _components(stuck, graph)
    owner = {n: i for i, component in enumerate(components) for n in component}
    findings = []
    for i, component in enumerate(components):
        if any(owner[t] != i for n in component for t in graph[n]):
            continue  # it only leads into another trap, which is reported
        first = component[0]
        if len(component) > 1:
            ring = " -> ".join(_cycle(component, graph))
            message = (f"loop without an exit: {ring} never reaches an end, a hand-off or an "
                       "expiry, so the conversation could never finish")
            findings.append(_at(states.get(first), file, "error", message, "loop"))
        else:
            message = (f"dead end: from {first!r} the conversation can never finish (no way "
                       "leads to an 'end', a 'handoff' or the scenario's expiry)")
            findings.append(_at(states.get(first), file, "error", message, "dead-end"))
    return findings


def _unbounded_loops(machine: Machine, reached: set[str], states: dict[str, Loc], file: str
                     ) -> list[Finding]:
    """Cycles (not through `return`/`stay`) with no visit limit on any of their states."""
    finishing = can_finish(machine)  # loops that cannot finish are errors already
    open_nodes = [n for n, node in machine.nodes.items()
                  if n in reached and n in finishing and node.visits is None]
    allowed = set(open_nodes)
    graph: dict[str, set[str]] = {}
    for name in open_nodes:
        node = machine.nodes[name]
        graph[name] = {e.target for e in node_edges(machine, node) if e.target in allowed}
    findings = []
    for component in _components(open_nodes, graph):
        if len(component) < 2 and component[0] not in graph[component[0]]:
            continue
        ring = " -> ".join(_cycle(component, graph))
        findings.append(_at(
            states.get(component[0]), file, "warning",
            f"loop {ring} has no visit limit: someone who keeps replying could keep it going "
            "forever; give one of these states (or `settings`) "
            "'visits: {max: N, goto: <state>}'", "visits"))
    return findings


def _silent_urgent(machine: Machine, reached: set[str], states: dict[str, Loc], file: str
                   ) -> list[Finding]:
    """Urgent hand-off states that send nothing on the way in."""
    return [_at(states.get(name), file, "warning",
                f"urgent hand-off {name!r} says nothing: the person hears nothing until an "
                "advocate answers; give it a 'say' (e.g. whom to call in an emergency)",
                "urgent-silent")
            for name, node in machine.nodes.items()
            if name in reached and node.kind == HANDOFF and node.priority == "urgent"
            and not node.say]


def _webhook_failures(machine: Machine, reached: set[str], states: dict[str, Loc], file: str
                      ) -> list[Finding]:
    """States calling a webhook whose `on_webhook` takes no failed call (an entry without
    `ok: true`, `field` or `if`, for every error)."""
    findings = []
    for name, node in machine.nodes.items():
        if name not in reached or node.actions.webhook is None:
            continue
        plain = [e for e in node.on_webhook if not e.ok and e.field is None and not e.when]
        taken = {e.error for e in plain}
        if None in taken or {"timeout", "failed", "refused"} <= taken:
            continue
        call = node.actions.webhook[0]
        findings.append(_at(states.get(name), file, "warning",
                            f"state {name!r} calls webhook {call!r} but no 'on_webhook' entry "
                            "takes a failed call: a timeout or an error would leave the "
                            "conversation here, saying nothing; add '- ok: false' (or "
                            "'otherwise: true') with what to do", "webhook-failure"))
    return findings


def _greeting_before_first_text(machine: Machine, states: dict[str, Loc], file: str
                                ) -> list[Finding]:
    """A start state that says something and waits: the other side's first text, which comes
    with the start, is read against the answers to that greeting."""
    node = machine.nodes.get(machine.start)
    if node is None or node.kind != EXPECT or not node.say:
        return []
    name = node.name
    return [_at(states.get(name), file, "warning",
                f"the start state {name!r} says something and then waits: the buyer's first "
                "text comes with the start, so it is read against the answers to this greeting "
                "and mostly falls through to 'otherwise'; leave the start state silent (route "
                "the first text from it, e.g. '- otherwise: true' with 'goto' a state that "
                "greets), or, if a campaign starts this scenario, lint it with --config naming "
                "its outreach numbers or campaigns", "greeting-first")]


def _missing_languages(machine: Machine) -> list[Finding]:
    """Messages of a scenario of several languages that lack one of them: a conversation in
    that language would get the default language's text."""
    info = machine.info
    declared = getattr(info, "languages", ())
    if info is None or len(declared) < 2:
        return []
    findings = []
    for loc, owner, given in info.texts:
        missing = [language for language in declared if language not in given]
        if missing:
            where = "a global handler" if owner == "globals" else f"state {owner!r}"
            findings.append(Finding(
                "warning", loc.file, loc.line, loc.col, loc.path,
                f"this message of {where} has no {', '.join(missing)} text (declared "
                f"languages: {', '.join(declared)}): a conversation in "
                f"{' or '.join(missing)} would get the "
                f"{'first given' if declared[0] in missing else declared[0]} one",
                "language"))
    return findings


def _experiments(machine: Machine, states: dict[str, Loc], file: str) -> list[Finding]:
    """Experiments that cannot compare anything: one branch, or branches that all go to the
    same state."""
    findings = []
    for name, node in machine.experiments.items():
        if len(node.split) < 2:
            problem = "has one branch: there is nothing to compare it with"
        elif len({b.target for b in node.split}) < 2:
            problem = "has branches that all go to the same state: they cannot differ"
        else:
            continue
        findings.append(_at(states.get(node.name), file, "warning",
                            f"experiment {name!r} {problem}", "experiment"))
    return findings


def segments_needed(text: str) -> tuple[str, int, int]:
    """(encoding, length in that encoding's units, the one-SMS limit) of `text`."""
    from ..gateways.smpp.encoding import can_gsm7, gsm7_septets

    if can_gsm7(text):
        return "GSM-7", gsm7_septets(text), GSM7_LIMIT
    return "UCS-2", len(text.encode("utf-16-be")) // 2, UCS2_LIMIT


def _long_messages(machine: Machine) -> list[Finding]:
    info = machine.info
    if info is None:
        return []
    findings = []
    seen: set[tuple[str, int, int]] = set()
    for loc, _owner, template in info.messages:
        key = (loc.file, loc.line, loc.col)
        if key in seen:
            continue
        seen.add(key)
        values = {name: SAMPLE.get(name, FILLER) for name in template.names}
        for part in template.parts:  # an unset variable shows its fallback
            if isinstance(part, tuple) and part[1] and part[0] not in SAMPLE:
                values[part[0]] = ""
        text = template.render(values)
        encoding, length, limit = segments_needed(text)
        if length > limit:
            why = "" if encoding == "GSM-7" else (
                " (it has a character outside the GSM alphabet, such as an emoji or a curly "
                "quote, so the limit is 70)")
            findings.append(Finding(
                "warning", loc.file, loc.line, loc.col, loc.path,
                f"message is {length} {encoding} characters with sample placeholder values, "
                f"longer than one SMS ({limit}){why}: it would arrive in parts", "length"))
    return findings
