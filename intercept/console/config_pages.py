"""Read-only pages about what the config and the scenario folder define: campaigns with their
live figures, and each scenario's versions and state table with how many conversations reached
each state and took each transition."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from ..authoring.graph import edges
from ..authoring.layout import Box, Layout, Path, layout
from ..engine.machine import END, HANDOFF, RETURN, STAY, Machine
from ..http import schemas as s
from ..http.auth import Role
from ..http.routing import HTTPError, Request, Response, Route
from ..store import reads as q
from ..store.scenario_reads import scenario_funnel

SHOWN_TARGET = {RETURN: "(back where it was)", STAY: "(stays)", "": "(end)"}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
SCENARIO = "/scenarios/{name}"
DIAGRAM_LIMIT = 80
"""Above this many states the page shows the table only (the diagram would be unreadable)."""


@dataclass(frozen=True, slots=True)
class StateRow:
    """One state of a scenario: conversations that reached it, and its ways out."""

    name: str
    kind: str
    reached: int
    ways_out: list[tuple[str, str, int]]
    """(label, target, times taken)."""


@dataclass(frozen=True, slots=True)
class Diagram:
    """The state diagram as the template draws it: placed boxes and routed edges, with counts."""

    layout: Layout
    boxes: list[tuple[Box, str, int, str]]
    """(box, CSS classes, conversations that reached it, its second line)."""
    arrows: list[tuple[Path, int, str]]
    """(path, times taken, its triggers: a tooltip; the drawing shows the count only)."""
    summary: str
    visits: str
    """The scenario's shared visit limit, in words ("" without one)."""


def diagram(machine: Machine, reached: dict[str, int],
            taken: dict[tuple[str, str], int]) -> Diagram | None:
    """The diagram of `machine` with its counts, or None above `DIAGRAM_LIMIT` states.

    An edge is drawn once per (state, next state), with the count the table gives each way out
    between them; ways out that leave the scenario's states (back where it was, the end, expiry)
    are in the table only, and so is a visit limit most states share (it is said once)."""
    names = list(machine.nodes)
    if len(names) > DIAGRAM_LIMIT:
        return None
    limits = [n.visits for n in machine.nodes.values() if n.visits is not None]
    shared = limits[0] if len(limits) >= 3 and len(set(limits)) == 1 else None
    labels: dict[tuple[str, str], list[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    for edge in edges(machine, with_globals=False):
        if edge.kind == "visits" and shared is not None:
            continue  # the scenario's default visit limit: one sentence, not an edge per state
        target = edge.source if edge.target == STAY else edge.target
        if target in machine.nodes:
            labels.setdefault((edge.source, target), []).append(edge.label or edge.kind)
            # the table's figure (a `stay` way out counts as the table counts it)
            counts[(edge.source, target)] = max(counts.get((edge.source, target), 0),
                                                taken.get((edge.source, edge.target), 0))
    second = {n: f"{reached.get(n, 0)} reached" for n in names}
    placed = layout(names, machine.start, list(labels),
                    texts={n: (n, second[n]) for n in names})
    boxes = []
    for name in names:
        kind = machine.nodes[name].kind
        classes = ["state", f"kind-{kind}"]
        if kind == END:
            classes.append("terminal")
        if kind == HANDOFF:
            classes.append("handoff")
        if name == machine.start:
            classes.append("start")
        boxes.append((placed.boxes[name], " ".join(classes), reached.get(name, 0), second[name]))
    arrows = []
    for path in placed.paths:
        shown = labels[(path.source, path.target)]  # as the table names them
        arrows.append((path, counts[(path.source, path.target)], ", ".join(shown)))
    ends = sum(1 for n in machine.nodes.values() if n.kind == END)
    handoffs = sum(1 for n in machine.nodes.values() if n.kind == HANDOFF)
    summary = (f"State diagram of {machine.name} v{machine.version}: {len(names)} states "
               f"({ends} ending, {handoffs} handing off to a person) and {len(arrows)} "
               f"transitions, starting at {machine.start}; {reached.get(machine.start, 0)} "
               f"conversations reached the start. The table below gives every state and way "
               f"out with its count.")
    visits = (f"Every state with a visit limit goes to {shared.target} after {shared.limit} "
              f"visits; those ways out are in the table only." if shared is not None else "")
    return Diagram(placed, boxes, arrows, summary + (" " + visits if visits else ""), visits)


class ConfigPages:
    """/campaigns, /scenarios and /scenarios/{name} (the name is matched by `Console`)."""

    def __init__(self, console: Any):
        self.console = console
        """The `app.Console` these pages belong to."""

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/campaigns", self.campaigns, "Campaigns", role=Role.viewer),
            Route("GET", "/scenarios", self.scenarios, "Scenarios", role=Role.viewer),
        ]

    def scenario_route(self) -> Route:
        return Route("GET", SCENARIO, self.scenario, "One scenario", role=Role.viewer)

    async def campaigns(self, request: Request) -> Response:
        """The API's own campaign figures (`GET /api/campaigns`), as a table; admins get
        Start and Pause (`Actions`)."""
        api_request = Request("GET", "/api/campaigns", request.scope, b"", {}, request.client,
                              request.principal, query=s.CampaignQuery())
        response = await self.console.api.campaigns(api_request)
        found = msgspec.json.decode(response.body, type=s.CampaignList)
        assert request.principal is not None
        return self.console.html(200, "campaigns.html", request, page="campaigns",
                                 campaigns=found.items,
                                 is_admin=request.principal.role >= Role.admin)

    async def scenarios(self, request: Request) -> Response:
        registry = self.console.services.registry
        stats = await self.console.reads.run(q.stats)
        counts: dict[str, int] = {}
        for name, _, count in stats.by_scenario:
            counts[name] = counts.get(name, 0) + count
        rows = [(name, registry.current(name).version, counts.get(name, 0))
                for name in sorted(registry.names())]
        return self.console.html(200, "scenarios.html", request, page="scenarios", rows=rows)

    async def scenario(self, request: Request) -> Response:
        name: str = request.query
        registry = self.console.services.registry
        machine = registry.current(name) if NAME.match(name) else None
        if machine is None:
            raise HTTPError(404, f"There is no scenario {name!r}; the scenarios are "
                                 f"{', '.join(sorted(registry.names())) or 'none'}.")
        funnel = await self.console.reads.run(scenario_funnel, name, machine.version)
        all_versions = await self.console.reads.run(scenario_funnel, name, None)
        reached = dict(funnel.reached)
        taken: dict[tuple[str, str], int] = {}
        for move in funnel.moves:
            key = (move.source or "", move.target)
            taken[key] = taken.get(key, 0) + move.count
        out: dict[str, list[tuple[str, str, int]]] = {}
        for edge in edges(machine, with_globals=False):
            out.setdefault(edge.source, []).append(
                (edge.label or edge.kind, SHOWN_TARGET.get(edge.target, edge.target),
                 taken.get((edge.source, edge.target), 0)))
        states = [StateRow(node, machine.nodes[node].kind, reached.get(node, 0),
                           out.get(node, [])) for node in machine.nodes]
        versions = [(v, dict(all_versions.versions).get(v, 0))
                    for n, v in registry.versions() if n == name]
        return self.console.html(
            200, "scenario.html", request, page="scenarios", machine=machine, states=states,
            versions=versions, outcomes=funnel.outcomes,
            diagram=diagram(machine, reached, taken), diagram_limit=DIAGRAM_LIMIT,
            started=dict(funnel.versions).get(machine.version, 0))
