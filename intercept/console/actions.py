"""The console's forms that change something: reply, hand back, claim, release, assign, notes,
outcomes, and starting and pausing campaigns.

Each one calls the API's own handler (`http.api.Api`, `http.handoff_routes.HandoffRoutes`)
with the form's fields as the API's body Struct, so the checks, refusals and sentences are the
API's; each is audited under the console's path, and then sends the browser back to the page
it came from (303). A refusal shows as a page with the API's sentence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..http import schemas as s
from ..http.auth import Role
from ..http.routing import HTTPError, Request, Response, Route
from .web import form, redirect

Handler = Callable[[Request], Awaitable[Response]]


def _sentence(message: str) -> str:
    """The API's message as a sentence: a capital first letter and a full stop."""
    text = message[:1].upper() + message[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def _body(kind: type[Any], fields: dict[str, Any], refusal: str) -> Any:
    """`fields` as the API's body Struct `kind`; a 400 with `refusal` when they do not fit."""
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError:
        raise HTTPError(400, refusal) from None


class Actions:
    """The POST handlers; `routes()` lists them with the least role each needs."""

    def __init__(self, console: Any):
        self.console = console
        """The `app.Console` these forms belong to (its API handlers and audit)."""

    def routes(self) -> list[Route]:
        advocate, admin = Role.advocate, Role.admin
        return [
            Route("POST", "/conversations/{id}/messages", self.reply,
                  "Reply as a human (take over)", role=advocate),
            Route("POST", "/conversations/{id}/hand-back", self.hand_back,
                  "Give it back to the bot", role=advocate),
            Route("POST", "/conversations/{id}/claim", self.claim,
                  "Claim its hand-off", role=advocate),
            Route("POST", "/conversations/{id}/release", self.release,
                  "Give its hand-off back to the queue", role=advocate),
            Route("POST", "/conversations/{id}/assign", self.assign,
                  "Give its hand-off to an advocate", role=admin),
            Route("POST", "/conversations/{id}/notes", self.add_note,
                  "Write an internal note", role=advocate),
            Route("POST", "/conversations/{id}/outcomes", self.record_outcome,
                  "Record an outcome", role=advocate),
            Route("POST", "/campaigns/start", self.start_campaign, "Start a campaign",
                  role=admin),
            Route("POST", "/campaigns/pause", self.pause_campaign, "Pause a campaign",
                  role=admin),
        ]

    def _api(self, path: str) -> Handler:
        """The API's handler of POST `path`."""
        handler: Handler = self.console.api_handlers["POST", path]
        return handler

    async def _act(self, request: Request, action: str, data: Any, handler: Handler,
                   back: str) -> Response:
        """Run the API's `handler` with `data` as its body, audit it as `action`, go `back`."""
        api_request = Request("POST", request.path, request.scope, b"", request.params,
                              request.client, request.principal, data=data)
        try:
            response = await handler(api_request)
        except HTTPError as exc:
            await self.console.audit(request, action, exc.status, exc.message)
            raise HTTPError(exc.status, _sentence(exc.message)) from None
        await self.console.audit(request, action, response.status, response.detail)
        return redirect(back)

    async def _on_conversation(self, request: Request, verb: str, data: Any,
                               handler: Handler) -> Response:
        cid = request.params["id"]
        return await self._act(request, f"POST /conversations/{{id}}/{verb}", data, handler,
                               f"/conversations/{cid}")

    async def reply(self, request: Request) -> Response:
        message = _body(s.OperatorMessage, {"text": form(request).get("text", "")},
                        "A message is 1 to 1600 characters.")
        return await self._on_conversation(request, "messages", message,
                                           self.console.api.send_message)

    async def hand_back(self, request: Request) -> Response:
        return await self._on_conversation(request, "hand-back", s.HandBackRequest(),
                                           self.console.api.hand_back)

    async def claim(self, request: Request) -> Response:
        return await self._on_conversation(request, "claim", s.ClaimRequest(),
                                           self._api("/api/conversations/{id}/claim"))

    async def release(self, request: Request) -> Response:
        return await self._on_conversation(request, "release", s.ClaimRequest(),
                                           self._api("/api/conversations/{id}/release"))

    async def assign(self, request: Request) -> Response:
        body = _body(s.AssignRequest, {"advocate": form(request).get("advocate", "").strip()},
                     "Give the name of the advocate's token (1 to 100 characters).")
        return await self._on_conversation(request, "assign", body,
                                           self._api("/api/conversations/{id}/assign"))

    async def add_note(self, request: Request) -> Response:
        body = _body(s.NoteRequest, {"text": form(request).get("text", "").strip()},
                     "A note is 1 to 4000 characters.")
        return await self._on_conversation(request, "notes", body,
                                           self._api("/api/conversations/{id}/notes"))

    async def record_outcome(self, request: Request) -> Response:
        fields = form(request)
        kinds = ", ".join(s.OutcomeKind.__args__)  # type: ignore[attr-defined]
        body = _body(s.OutcomeRequest, {"kind": fields.get("kind", ""),
                                        "note": fields.get("note", "")},
                     f"Choose an outcome ({kinds}); a note is at most 2000 characters.")
        return await self._on_conversation(request, "outcomes", body,
                                           self.console.api.record_outcome)

    async def _campaign(self, request: Request, verb: str, handler: Handler) -> Response:
        body = _body(s.CampaignRequest, {"name": form(request).get("name", "")},
                     "Name the campaign (1 to 64 characters).")
        return await self._act(request, f"POST /campaigns/{verb}", body, handler, "/campaigns")

    async def start_campaign(self, request: Request) -> Response:
        return await self._campaign(request, "start", self.console.api.start_campaign)

    async def pause_campaign(self, request: Request) -> Response:
        return await self._campaign(request, "pause", self.console.api.pause_campaign)
