"""A small route table: method + path template (``/api/conversations/{id}``) -> handler.

Each `Route` also declares who may call it, the Structs of its query, body and responses, and
whether calls are audited; `App` enforces that and `openapi.py` describes it. A gateway's
webhooks arrive as `Endpoint`s (plain data, intercept/transport.py); `endpoint_route` makes each
one a `Route`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from ..transport import Endpoint, WebhookRequest
from .auth import Principal, Role

_PARAM = re.compile(r"\{(\w+)\}")
_encode = msgspec.json.Encoder().encode


async def read_body(receive: Any, limit: int) -> bytes | None:
    """An ASGI request's whole body; None past `limit` bytes (answer 413); b"" when the client
    went away before sending it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class Mounted(Protocol):
    """An ASGI app mounted beside the routes (the web console): it takes the paths it owns."""

    def owns(self, path: str) -> bool: ...

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None: ...


class HTTPError(Exception):
    """Raised by a handler: answer `status` with ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    detail: str = ""
    """A short note for the audit log (never a message body or a full phone number)."""


def json_response(status: int, payload: Any, *, detail: str = "") -> Response:
    return Response(status, _encode(payload), detail=detail)


def error_response(status: int, message: str) -> Response:
    return Response(status, _encode({"error": message}), detail=message[:200])


def unavailable_response(message: str, retry_after: float) -> Response:
    """503 with Retry-After: the caller (a provider, the simulator) should try again later."""
    response = error_response(503, message)
    response.headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    return response


@dataclass(slots=True)
class Request:
    method: str
    path: str
    scope: dict[str, Any]
    body: bytes
    params: dict[str, int]
    client: str | None
    principal: Principal | None = None
    query: Any = None
    """The decoded query Struct of the route (None if it takes none)."""
    data: Any = None
    """The decoded body Struct of the route (None if it takes none)."""

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope.get("headers", ()):
            if key.lower() == name:
                return str(value.decode("latin-1"))
        return None


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    role: Role | None = None
    """The least role that may call it; None: no authentication."""
    query: type | None = None
    body: type | None = None
    responses: dict[int, Any] = field(default_factory=dict)
    """Status -> Struct (for the OpenAPI description); None for a non-JSON body."""
    audit: bool = False
    description: str = ""
    content_type: str = "application/json"
    tags: tuple[str, ...] = ()

    @property
    def action(self) -> str:
        """How the audit log names it: ``POST /api/conversations/{id}/messages``."""
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)


def endpoint_route(endpoint: Endpoint) -> Route:
    """A gateway's webhook as a route without authentication (the handler checks what the
    provider signs): the request goes in as a `WebhookRequest`, its answer comes back out."""
    handle = endpoint.handler

    async def handler(request: Request) -> Response:
        scope = request.scope
        raw = scope.get("raw_path") or scope["path"].encode()
        webhook = WebhookRequest(
            method=request.method, path=raw.decode("latin-1").split("?", 1)[0],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=tuple((key.decode("latin-1").lower(), value.decode("latin-1"))
                          for key, value in scope.get("headers", ())),
            body=request.body, scheme=scope.get("scheme", "http"))
        answer = await handle(webhook)
        return Response(answer.status, answer.body, answer.content_type.encode("latin-1"),
                        [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers])

    handler.__name__ = getattr(handle, "__name__", "webhook")  # the OpenAPI operationId
    return Route(endpoint.method, endpoint.path, handler, endpoint.summary,
                 responses=dict.fromkeys(endpoint.statuses), description=endpoint.description,
                 content_type=endpoint.content_type, tags=endpoint.tags)


class RouteTable:
    """Finds the route of a request. Path parameters are positive integers."""

    def __init__(self, routes: Iterable[Route]):
        self.routes = list(routes)
        self._compiled: list[tuple[re.Pattern[str], list[Route]]] = []
        seen: dict[str, list[Route]] = {}
        for route in self.routes:
            seen.setdefault(route.path, []).append(route)
        for path, group in seen.items():
            pattern = "^" + _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[0-9]{{1,18}})",
                                       re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
                                       ) + "$"
            self._compiled.append((re.compile(pattern), group))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, int]] | list[str] | None:
        """The route and its parameters; else the methods the path allows; else None."""
        for pattern, group in self._compiled:
            found = pattern.match(path)
            if found is None:
                continue
            params = {k: int(v) for k, v in found.groupdict().items()}
            for route in group:
                if route.method == method:
                    return route, params
            return [r.method for r in group]
        return None
