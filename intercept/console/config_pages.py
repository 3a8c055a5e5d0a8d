"""Read-only pages about what the config and the scenario folder define: campaigns with their
live figures, and each scenario's versions and state table with how many conversations reached
each state and took each transition."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from ..authoring.graph import edges
from ..engine.machine import RETURN, STAY
from ..http import schemas as s
from ..http.auth import Role
from ..http.routing import HTTPError, Request, Response, Route
from ..store import reads as q
from ..store.scenario_reads import scenario_funnel

SHOWN_TARGET = {RETURN: "(back where it was)", STAY: "(stays)", "": "(end)"}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
SCENARIO = "/scenarios/{name}"


@dataclass(frozen=True, slots=True)
class StateRow:
    """One state of a scenario: conversations that reached it, and its ways out."""

    name: str
    kind: str
    reached: int
    ways_out: list[tuple[str, str, int]]
    """(label, target, times taken)."""


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
            started=dict(funnel.versions).get(machine.version, 0))
