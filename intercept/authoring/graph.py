"""The state diagram of a compiled scenario: its edges, reachability, and Mermaid / DOT text.

Everything is read from the compiled table (`Machine.nodes`), so the diagram shows what the
engine runs, includes and defaults applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.machine import (
    END,
    EXPECT,
    HANDOFF,
    IF,
    RETURN,
    SPLIT,
    STAY,
    Machine,
    Node,
    VisitLimit,
)
from ..engine.match import (
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
    format_number,
)

ANYWHERE = "(anywhere)"
"""The source of global-handler edges when they are drawn once for every state."""
BACK = "(back)"
"""The target of a `return` edge: the state a global handler interrupted."""
EXPIRED = "(expired)"
"""The target of the scenario's expiry when it ends the conversation at once."""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str
    kind: str  # reply, global, timeout, goto, then, else, split, lookup, resume, visits, ...


def describe(matcher: Matcher) -> str:
    """A short label for a matcher: `price`, `"how much", "rate"…`, `has media`."""
    if isinstance(matcher, AnyOf):
        return matcher.name
    if isinstance(matcher, Always):
        return "otherwise"
    if isinstance(matcher, Words | AllWords):
        parts = matcher.parts if isinstance(matcher, AllWords) else (matcher,)
        words = [w for p in parts for w in (*sorted(p.words), *(ph.strip() for ph in p.phrases),
                                              *p.symbols)]
        shown = ", ".join(words[:2]) + ("…" if len(words) > 2 else "")
        return ("all: " if isinstance(matcher, AllWords) else "") + shown
    if isinstance(matcher, Fuzzy):
        words = [" ".join(p) for p in matcher.phrases]
        return "~" + ", ".join(words[:2]) + ("…" if len(words) > 2 else "")
    if isinstance(matcher, Regex):
        names = list(matcher.pattern.groupindex)
        return f"regex ({', '.join(names)})" if names else "regex"
    if isinstance(matcher, Number):
        if matcher.low is None and matcher.high is None:
            return "a number"
        low = format_number(matcher.low) if matcher.low is not None else ""
        high = format_number(matcher.high) if matcher.high is not None else ""
        return f"number {low}–{high}"
    if isinstance(matcher, Answer):
        return matcher.value
    if isinstance(matcher, Has):
        return f"has {matcher.what}"
    return matcher.kind


def describe_conditions(conditions: tuple[Condition, ...], limit: int = 48) -> str:
    """An `if`'s test as it reads: `persona.age < 18`, `city.name = seattle and ...`."""
    parts = []
    for c in conditions:
        tests = []
        if c.exists is not None:
            tests.append(f"{c.var} {'set' if c.exists else 'not set'}")
        if c.equals is not None:
            tests.append(f"{c.var} = {c.equals}")
        if c.not_equals is not None:
            tests.append(f"{c.var} ≠ {c.not_equals}")
        if c.in_ is not None:
            tests.append(f"{c.var} in {', '.join(c.in_)}")
        for op, bound in (("<", c.lt), ("≤", c.le), (">", c.gt), ("≥", c.ge)):
            if bound is not None:
                tests.append(f"{c.var} {op} {format_number(bound)}")
        parts.extend(tests or [c.var])
    text = " and ".join(parts)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def node_edges(machine: Machine, node: Node, *, with_globals: bool = True) -> list[Edge]:
    """The edges out of one state. RETURN and STAY targets are left as they are."""
    name = node.name
    out: list[Edge] = []
    if node.visits is not None:
        out.append(Edge(name, node.visits.target, f"after {node.visits.limit} visits", "visits"))
    if node.kind in (EXPECT, HANDOFF) and with_globals:
        for entry in node.globals:
            if node.kind == EXPECT or entry.while_paused:
                out.append(Edge(name, entry.target, entry.name, "global"))
    if node.kind == EXPECT:
        for entry in node.expect:
            out.append(Edge(name, entry.target, describe(entry.matcher), "reply"))
        if node.timeout is not None:
            out.append(Edge(name, node.timeout.target, f"no reply {_duration(node.timeout.after)}",
                            "timeout"))
        for entry in node.on_lookup:
            bits = [entry.kind or "lookup"]
            if entry.ok is not None:
                bits.append("ok" if entry.ok else "failed")
            if entry.field:
                bits.append(f"has {entry.field}")
            out.append(Edge(name, entry.target, " ".join(bits), "lookup"))
        for hook in node.on_webhook:
            call = node.actions.webhook[0] if node.actions.webhook else "webhook"
            bits = [call, "ok" if hook.ok else "failed"] if hook.ok is not None else [call]
            if hook.error:
                bits.append(hook.error)
            if hook.field:
                bits.append(f"has {hook.field}")
            out.append(Edge(name, hook.target, " ".join(bits), "lookup"))
        if machine.expire is not None:
            target = machine.expire.target or EXPIRED
            out.append(Edge(name, target, f"silent {_duration(machine.expire.after)}", "expire"))
    elif node.kind == IF:
        test = describe_conditions(node.condition)
        out.append(Edge(name, node.then or "", test, "then"))
        out.append(Edge(name, node.otherwise or "", f"not ({test})" if " and " in test
                        else f"not {test}", "else"))
    elif node.kind == SPLIT:
        total = sum(b.weight for b in node.split)
        for b in node.split:
            out.append(Edge(name, b.target, f"{b.name} {b.weight / total:.0%}", "split"))
    elif node.kind == HANDOFF:
        out.append(Edge(name, node.resume or "", "resumed", "resume"))
    elif node.kind != END:
        out.append(Edge(name, node.goto or "", "", "goto"))
    return out


def edges(machine: Machine, *, with_globals: bool = True) -> list[Edge]:
    return [e for node in machine.nodes.values()
            for e in node_edges(machine, node, with_globals=with_globals)]


def interruptible(machine: Machine) -> set[str]:
    """States a global handler can leave for another state (so `return` can come back)."""
    return {name for name, node in machine.nodes.items()
            if any(e.target not in (RETURN, STAY) for e in node.globals)}


def successors(machine: Machine) -> dict[str, set[str]]:
    """Every state's next states, `return` resolved to the states it may go back to."""
    back = interruptible(machine)
    out: dict[str, set[str]] = {}
    for name, node in machine.nodes.items():
        targets: set[str] = set()
        for edge in node_edges(machine, node):
            if edge.target == RETURN:
                targets |= back or {name}
            elif edge.target == STAY:
                targets.add(name)
            else:
                targets.add(edge.target)
        out[name] = targets
    return out


def reachable(machine: Machine, start: str | None = None) -> set[str]:
    graph = successors(machine)
    seen = {start or machine.start}
    todo = list(seen)
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen and target in machine.nodes:
                seen.add(target)
                todo.append(target)
    return seen


def can_finish(machine: Machine) -> set[str]:
    """States from which the conversation can end (an `end`, expiry) or reach a person."""
    graph = successors(machine)
    done = {name for name, node in machine.nodes.items() if node.kind in (END, HANDOFF)}
    done |= {name for name, targets in graph.items() if EXPIRED in targets}
    changed = True
    while changed:
        changed = False
        for name, targets in graph.items():
            if name not in done and targets & done:
                done.add(name)
                changed = True
    return done


# ---------------------------------------------------------------------------------------------
# Text formats


def _shape_mermaid(node: Node) -> str:
    label = node.name.replace('"', "'")
    if node.kind == END:
        return f'(["{label} → {node.end}"])'
    if node.kind == IF:
        return f'{{"{label}"}}'
    if node.kind == SPLIT:
        return f'{{{{"{label}"}}}}'
    if node.kind == HANDOFF:
        person = "person, urgent" if node.priority == "urgent" else "person"
        return f'[["{label} → {person}"]]'
    return f'["{label}"]'


def _ids(machine: Machine) -> dict[str, str]:
    ids = {name: f"s{i}" for i, name in enumerate(machine.nodes)}
    ids.update({ANYWHERE: "anywhere", BACK: "back", EXPIRED: "expired"})
    return ids


def mermaid(machine: Machine) -> str:
    """A Mermaid flowchart (paste into GitHub markdown or mermaid.live)."""
    ids = _ids(machine)
    lines = ["flowchart TD", f'  start((start)) --> {ids[machine.start]}']
    for name, node in machine.nodes.items():
        lines.append(f"  {ids[name]}{_shape_mermaid(node)}")
    extra = _global_edges(machine)
    drawn = _drawn_edges(machine)
    used = {e.target for e in drawn} | {e.target for e in extra}
    if extra:
        lines.append('  anywhere((anywhere))')
    if RETURN in used:
        lines.append('  back(("↩ back"))')
    if EXPIRED in used:
        lines.append('  expired((("expired")))')
    for edge in [*extra, *drawn]:
        source = ids[edge.source]
        if edge.target == STAY:
            target = source
        else:
            target = ids[BACK if edge.target == RETURN else edge.target]
        arrow = "-.->" if edge.kind in ("timeout", "expire", "visits", "global") else "-->"
        label = edge.label.replace('"', "'")
        lines.append(f'  {source} {arrow}|"{label}"| {target}' if label
                     else f"  {source} {arrow} {target}")
    return "\n".join(lines) + "\n"


def _global_edges(machine: Machine) -> list[Edge]:
    """Each global handler once, from `(anywhere)`; so are expiry and a visit limit shared by
    most states (the scenario's default)."""
    seen: dict[str, Edge] = {}
    for node in machine.nodes.values():
        for entry in node.globals:
            seen.setdefault(entry.name, Edge(ANYWHERE, entry.target, entry.name, "global"))
    out = list(seen.values())
    if machine.expire is not None:
        out.append(Edge(ANYWHERE, machine.expire.target or EXPIRED,
                        f"silent {_duration(machine.expire.after)}", "expire"))
    shared = _shared_visits(machine)
    if shared is not None:
        out.append(Edge(ANYWHERE, shared.target, f"after {shared.limit} visits", "visits"))
    return out


def _shared_visits(machine: Machine) -> VisitLimit | None:
    limits = [n.visits for n in machine.nodes.values() if n.visits is not None]
    if len(limits) >= 3 and len(set(limits)) == 1:
        return limits[0]
    return None


def _drawn_edges(machine: Machine) -> list[Edge]:
    """The per-state edges of a diagram (without what `_global_edges` draws once)."""
    shared = _shared_visits(machine)
    return [e for e in edges(machine, with_globals=False)
            if e.kind != "expire" and not (e.kind == "visits" and shared is not None)]


def dot(machine: Machine) -> str:
    """A Graphviz digraph (`dot -Tsvg`)."""
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    shapes = {END: "doubleoctagon", IF: "diamond", SPLIT: "hexagon", HANDOFF: "box3d"}
    lines = [f"digraph {quote(machine.name)} {{", "  rankdir=TB;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];',
             '  "(start)" [shape=circle, label="start"];',
             f'  "(start)" -> {quote(machine.start)};']
    for name, node in machine.nodes.items():
        label = f"{name}\\n→ {node.end}" if node.kind == END else name
        if node.kind == HANDOFF and node.priority == "urgent":
            label += "\\n(urgent)"
        shape = shapes.get(node.kind, "box")
        lines.append(f'  {quote(name)} [shape={shape}, label="{label}"];')
    extra = _global_edges(machine)
    if extra:
        lines.append(f'  {quote(ANYWHERE)} [shape=ellipse, style=dashed];')
    for edge in [*extra, *_drawn_edges(machine)]:
        target = edge.source if edge.target == STAY else (
            BACK if edge.target == RETURN else edge.target)
        style = ", style=dashed" if edge.kind in ("timeout", "expire", "visits",
                                                  "global") else ""
        lines.append(f"  {quote(edge.source)} -> {quote(target)} "
                     f"[label={quote(edge.label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
