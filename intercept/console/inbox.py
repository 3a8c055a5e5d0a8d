"""/handoffs, the advocates' inbox: the open hand-offs, urgent first, then the longest open,
with who holds each and how long it has waited.

The list is the API's own (`GET /api/handoffs`, through its handler): an advocate is not
offered the hand-offs another advocate claimed, and a viewer sees masked numbers. It updates
while the page is open: its event stream (/handoffs/events, see `Pages.events`) says when the
queue changed and htmx reloads the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ..http import schemas as s
from ..http.auth import Role
from ..http.routing import Request, Response, Route

SHOWN = 200
"""Hand-offs one page lists (the API's page size; the most urgent and oldest first)."""
STREAM = "/handoffs/events"


def waited(seconds: float) -> str:
    """A wait as a person reads it: ``45s``, ``12m``, ``3h 05m``, ``2d 4h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One open hand-off as the inbox shows it."""

    conversation_id: int
    number: str
    """Masked for a viewer, as the API shows it."""
    city: str | None
    urgent: bool
    reason: str
    source: str
    opened_at: datetime
    claimed_by: str | None
    answered: bool
    wait: str
    notes: int


def _row(entry: s.HandoffEntry, city_names: dict[str, str]) -> InboxRow:
    c, h = entry.conversation, entry.handoff
    return InboxRow(conversation_id=c.id, number=c.their_number,
                    city=None if c.city is None else city_names.get(c.city, c.city),
                    urgent=h.priority == "urgent",
                    reason=h.reason, source=h.source, opened_at=h.opened_at,
                    claimed_by=h.claimed_by, answered=h.first_reply_at is not None,
                    wait=waited(entry.waiting_seconds), notes=entry.notes)


class Inbox:
    """The inbox page and its live list."""

    def __init__(self, console: Any):
        self.console = console
        """The `app.Console` this page belongs to (the API's handlers, its renderer)."""

    def routes(self) -> list[Route]:
        viewer = Role.viewer
        return [
            Route("GET", "/handoffs", self.inbox, "The advocates' inbox", role=viewer),
            Route("GET", "/handoffs/list", self.listing, "Its list, for htmx", role=viewer),
            # a stream: `Console` hands it to `Pages.events` with the ASGI receive and send
            Route("GET", STREAM, self.listing, "The queue's changes as events", role=viewer),
        ]

    async def _values(self, request: Request, action: str) -> dict[str, Any]:
        """The API's queue for this user, shaped for the templates; audited as `action`."""
        api_request = Request("GET", "/api/handoffs", request.scope, b"", {}, request.client,
                              request.principal, query=s.PageQuery(limit=SHOWN))
        response = await self.console.api_handlers["GET", "/api/handoffs"](api_request)
        page = msgspec.json.decode(response.body, type=s.HandoffPage)
        await self.console.audit(request, action, 200, response.detail)
        assert request.principal is not None
        role = request.principal.role
        cities = self.console.services.config.cities
        names = {key: city.name for key, city in cities.items()}
        return {"rows": [_row(e, names) for e in page.items], "total": page.total,
                "may_claim": role >= Role.advocate, "me": request.principal.name,
                "masked": role < Role.advocate, "now": self.console.now()}

    async def inbox(self, request: Request) -> Response:
        values = await self._values(request, "GET /handoffs")
        return self.console.html(200, "handoffs.html", request, page="handoffs", **values)

    async def listing(self, request: Request) -> Response:
        values = await self._values(request, "GET /handoffs/list")
        return self.console.html(200, "_handoffs.html", request, **values)
