"""The ASGI application: /healthz, /metrics, and the simulator endpoints.

A few fixed routes do not need a framework; this keeps the request path short and the
dependencies few. Every request body is read in full (hypercorn keep-alive depends on it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from ..errors import ScenarioError, ScenarioErrors
from ..gateways import SimGateway
from ..phone import to_e164

if TYPE_CHECKING:
    from ..server import Server

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BODY = 64 * 1024


class SimInbound(msgspec.Struct, forbid_unknown_fields=True, rename={"from_": "from"}):
    """POST /sim/messages: a simulated phone texts one of our numbers."""

    from_: str
    to: str
    text: str
    id: str | None = None
    media: list[str] = []


_decode_sim = msgspec.json.Decoder(SimInbound).decode


class App:
    def __init__(self, server: Server):
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, {"error": "request body too large"})
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method == "GET":
            await _respond(send, 200, self.server.health())
        elif path == "/metrics" and method == "GET":
            await _respond_raw(send, 200, self.server.metrics.render(),
                               b"text/plain; version=0.0.4; charset=utf-8")
        elif path == "/sim/messages" and method == "POST":
            await self._sim_message(body, send)
        elif path == "/sim/messages" and method == "GET":
            await self._sim_received(scope, send)
        elif path == "/api/scenarios/reload" and method == "POST":
            await self._reload(scope, send)
        elif path in ("/healthz", "/metrics", "/sim/messages", "/api/scenarios/reload"):
            await _respond(send, 405, {"error": f"{method} is not allowed on {path}"})
        else:
            await _respond(send, 404, {"error": f"no such endpoint: {path}"})

    async def _sim_message(self, body: bytes, send: Send) -> None:
        gateway = self.server.gateway
        if not isinstance(gateway, SimGateway):
            await _respond(send, 404, {"error": "the simulator endpoint exists only with "
                                                "gateway.url = 'sim://'"})
            return
        try:
            message = _decode_sim(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await _respond(send, 400, {"error": f"bad message: {exc}"})
            return
        their, ours = to_e164(message.from_), to_e164(message.to)
        if their is None or ours is None:
            field = "from" if their is None else "to"
            await _respond(send, 400, {"error": f"'{field}' is not a valid phone number"})
            return
        ingested = await gateway.inject(their_number=their, our_number=ours, text=message.text,
                                        gateway_id=message.id, media=tuple(message.media))
        await _respond(send, 200, {"conversation_id": ingested.conversation_id,
                                   "sequence": ingested.conv_seq,
                                   "duplicate": ingested.duplicate})

    async def _sim_received(self, scope: Scope, send: Send) -> None:
        """GET /sim/messages?to=NUMBER: what the simulated phone(s) received, oldest first."""
        gateway = self.server.gateway
        if not isinstance(gateway, SimGateway):
            await _respond(send, 404, {"error": "the simulator endpoint exists only with "
                                                "gateway.url = 'sim://'"})
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        wanted = query.get("to", [None])[0]
        if wanted is not None:
            wanted = to_e164(wanted)
            if wanted is None:
                await _respond(send, 400, {"error": "'to' is not a valid phone number"})
                return
        messages = [{"at": at, "from": m.our_number, "to": m.their_number, "text": m.text}
                    for at, m in gateway.recent if wanted is None or m.their_number == wanted]
        await _respond(send, 200, {"messages": messages})

    async def _reload(self, scope: Scope, send: Send) -> None:
        """POST /api/scenarios/reload: reload the scenario folder (from this machine only)."""
        client = (scope.get("client") or ("", 0))[0]
        if client not in ("127.0.0.1", "::1"):
            await _respond(send, 403, {"error": "scenario reload is only accepted from the "
                                                "server's own machine"})
            return
        try:
            report = await self.server.reload_scenarios()
        except ScenarioErrors as exc:
            await _respond(send, 422, {"ok": False,
                                       "errors": [e.render() for e in exc.errors]})
            return
        except ScenarioError as exc:
            await _respond(send, 422, {"ok": False, "errors": [exc.render()]})
            return
        await _respond(send, 200, {"ok": True, "summary": report.summary(),
                                   "added": [f"{n} v{v}" for n, v in report.added],
                                   "unchanged": [f"{n} v{v}" for n, v in report.unchanged]})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    await _respond_raw(send, status, json.dumps(payload).encode(), b"application/json")


async def _respond_raw(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
