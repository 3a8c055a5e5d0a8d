"""The ASGI application: /healthz, /metrics, the simulator endpoints and the admin API.

A route table (`routing.py`) is all the framework this needs; it keeps the request path short
and the dependencies few. For every request `App` reads the body in full (hypercorn keep-alive
depends on it), finds the route, authenticates the caller if the route has a role, decodes the
query and body into the route's Structs, runs the handler, and writes an audit row for audited
routes (whatever the outcome, refusals included) and for every failed authentication.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ..engine.yamlsource import split_msgspec_error
from ..foundation.phone import to_e164
from ..gateways import SimGateway
from ..store import Audit, StoreClosed, StoreUnavailable
from ..store.reads import Reads
from . import schemas as s
from .access import Access, auth_error_response
from .api import Api
from .auth import AuthError
from .openapi import openapi
from .routing import (
    HTTPError,
    Mounted,
    Request,
    Response,
    Route,
    RouteTable,
    endpoint_route,
    error_response,
    json_response,
    read_body,
    unavailable_response,
)
from .services import HttpServices

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BODY = MAX_BODY = 64 * 1024
SimInbound = s.SimInbound  # kept importable from here


def _explain(exc: msgspec.ValidationError, shape: type) -> tuple[str, str]:
    """(message, field path) of a validation error, naming the allowed values of an enum."""
    message, path = split_msgspec_error(str(exc))
    where = ".".join(str(p) for p in path)
    if message.startswith("invalid enum value") and len(path) == 1:
        info = msgspec.inspect.type_info(shape)
        for field in getattr(info, "fields", ()):
            if field.encode_name != path[0]:
                continue
            kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (
                field.type,)
            for kind in kinds:
                if isinstance(kind, msgspec.inspect.LiteralType):
                    got = message.removeprefix("invalid enum value ")
                    message = f"expected one of {', '.join(map(str, kind.values))}; got {got}"
    return message, where


def decode_body(shape: type, body: bytes) -> Any:
    """`body` (JSON) as a `shape` Struct; an empty body is ``{}``. Raises `HTTPError` 400."""
    try:
        return msgspec.json.decode(body if body.strip() else b"{}", type=shape)
    except msgspec.ValidationError as exc:
        message, where = _explain(exc, shape)
        if message.startswith("unknown field") or not where:
            raise HTTPError(400, f"invalid request body: {message}") from None
        raise HTTPError(400, f"invalid request body: {where}: {message}") from None
    except msgspec.DecodeError as exc:
        raise HTTPError(400, f"the request body is not valid JSON: {exc}") from None


def decode_query(shape: type, query_string: bytes) -> Any:
    """The query string as a `shape` Struct (strings converted to the fields' types)."""
    try:
        pairs = parse_qsl(query_string.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        raise HTTPError(400, "the query string is not valid UTF-8") from None
    values = dict(pairs)
    try:
        return msgspec.convert(values, shape, strict=False)
    except msgspec.ValidationError as exc:
        message, where = _explain(exc, shape)
        if message.startswith("unknown field"):
            raise HTTPError(400, message.replace("unknown field", "unknown query parameter")
                            ) from None
        raise HTTPError(400, f"query parameter {where!r}: {message}" if where else
                        f"invalid query: {message}") from None


class App:
    """The server's ASGI app. `routes` is the whole surface (and /api/openapi.json's source)."""

    def __init__(self, services: HttpServices):
        self.services = services
        self.reads = Reads(services.store.path, size=services.config.api.readers,
                           key=services.store.key)
        self.access = Access(services.config, reads=self.reads, store=services.store,
                             metrics=services.metrics, wall=services.now)
        self.api = Api(services, self.reads)
        self.routes = RouteTable([*map(endpoint_route, services.gateway.endpoints()),
                                  *self._public_routes(), *self.api.routes()])
        self._openapi: bytes | None = None
        self.mounted: list[Mounted] = []
        """Apps beside the routes, each taking the paths it owns (the console, at /)."""

    def _public_routes(self) -> list[Route]:
        sim = ("simulator",)
        return [
            Route("GET", "/healthz", self._healthz, "Liveness and a few gauges",
                  responses={200: s.Health}, tags=("server",)),
            Route("GET", "/metrics", self._metrics, "Prometheus metrics", responses={200: None},
                  content_type="text/plain", tags=("server",)),
            Route("POST", "/sim/messages", self._sim_message,
                  "A simulated phone texts one of our numbers", body=s.SimInbound,
                  responses={200: s.SimIngested, 400: s.ErrorBody, 404: s.ErrorBody},
                  tags=sim, description="Only with gateway.url = 'sim://'; 'to' must be one "
                  "of our numbers and 'from' must not be."),
            Route("GET", "/sim/messages", self._sim_received,
                  "What the simulated phones received", query=s.SimReceivedQuery,
                  responses={200: s.SimReceived, 404: s.ErrorBody}, tags=sim,
                  description="Only with gateway.url = 'sim://'."),
            Route("GET", "/api/openapi.json", self._openapi_json,
                  "This description (OpenAPI 3.1)", responses={200: {"type": "object"}},
                  tags=("server",)),
        ]

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        for part in self.mounted:
            if part.owns(scope["path"]):
                await part(scope, receive, send)
                return
        body = await read_body(receive, _MAX_BODY)
        if body is None:
            response = error_response(413, f"the request body is larger than {_MAX_BODY} bytes")
        else:
            response = await self.handle(scope, body)
        await _send(send, response)

    async def handle(self, scope: Scope, body: bytes) -> Response:
        """Route, authenticate, decode, run and audit one request."""
        method, path = scope["method"], scope["path"]
        found = self.routes.match(method, path)
        if found is None:
            return error_response(404, f"no such endpoint: {path}")
        if isinstance(found, list):
            response = error_response(405, f"{method} is not allowed on {path} (use "
                                           f"{' or '.join(found)})")
            response.headers.append((b"allow", ", ".join(found).encode()))
            return response
        route, params = found
        client = scope.get("client")
        request = Request(method, path, scope, body, params, client[0] if client else None)
        response = await self._run(route, request)
        if route.audit:
            await self._audit(route, request, response)
        return response

    async def _run(self, route: Route, request: Request) -> Response:
        if route.role is not None:
            try:
                request.principal = await self.access.check(request, route.role)
            except AuthError as exc:
                request.principal = exc.principal
                response = auth_error_response(exc)
                if exc.audit and not route.audit:
                    await self._audit(route, request, response)
                return response
        try:
            if route.query is not None:
                request.query = decode_query(route.query, request.scope.get("query_string", b""))
            if route.body is not None:
                request.data = decode_body(route.body, request.body)
            return await route.handler(request)
        except HTTPError as exc:
            return error_response(exc.status, exc.message)
        except StoreClosed:
            return error_response(503, "the server is shutting down")
        except StoreUnavailable as exc:  # intake while the disk is full: the caller retries
            return unavailable_response(str(exc), exc.retry_after)
        except Exception:
            log.exception("%s failed", route.action)
            return error_response(500, "internal error: the server log has the details")

    async def _audit(self, route: Route, request: Request, response: Response) -> None:
        principal = request.principal
        op = Audit(at=self.services.now(),
                   actor=principal.name if principal else "anonymous",
                   role=principal.role.name if principal else "",
                   action=route.action, status=response.status,
                   conversation_id=request.params.get("id"), detail=response.detail[:200])
        try:
            await self.services.store.call(op)
        except StoreClosed:
            log.warning("audit row for %s (status %d) not written: the store is closed",
                        route.action, response.status)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        try:
            await answer_lifespan(receive, send)
        finally:
            self.reads.close()

    # -- public endpoints

    async def _healthz(self, request: Request) -> Response:
        health = self.services.actions.health()
        return json_response(503 if health["status"] != "ok" else 200, health)

    async def _metrics(self, request: Request) -> Response:
        return Response(200, self.services.metrics.render(),
                        b"text/plain; version=0.0.4; charset=utf-8")

    async def _openapi_json(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = msgspec.json.encode(openapi(self.routes.routes))
        return Response(200, self._openapi)

    def _sim(self) -> SimGateway:
        gateway = self.services.gateway
        if not isinstance(gateway, SimGateway):
            raise HTTPError(404, "the simulator endpoint exists only with gateway.url = 'sim://'")
        return gateway

    async def _sim_message(self, request: Request) -> Response:
        gateway = self._sim()
        message: s.SimInbound = request.data
        their, ours = to_e164(message.from_), to_e164(message.to)
        if their is None or ours is None:
            field = "from" if their is None else "to"
            raise HTTPError(400, f"'{field}' is not a valid phone number")
        config = self.services.config
        if config.number(ours) is None:
            raise HTTPError(400, f"'to' {ours} is not one of our numbers (the [[numbers]] of "
                                 f"{config.source or 'the config'})")
        if config.number(their) is not None:
            raise HTTPError(400, f"'from' {their} is one of our numbers: a simulated phone "
                                 "must be someone else's")
        ingested = await gateway.inject(their_number=their, our_number=ours, text=message.text,
                                        gateway_id=message.id, media=tuple(message.media))
        return json_response(200, s.SimIngested(conversation_id=ingested.conversation_id,
                                                sequence=ingested.conv_seq,
                                                duplicate=ingested.duplicate))

    async def _sim_received(self, request: Request) -> Response:
        """GET /sim/messages?to=NUMBER: what the simulated phone(s) received, oldest first."""
        gateway = self._sim()
        query: s.SimReceivedQuery = request.query
        wanted = query.to
        if wanted is not None:
            wanted = to_e164(wanted)
            if wanted is None:
                raise HTTPError(400, "'to' is not a valid phone number")
        messages = [s.SimMessage(at=at, from_=m.our_number, to=m.their_number, text=m.text)
                    for at, m in gateway.recent if wanted is None or m.their_number == wanted]
        return json_response(200, s.SimReceived(messages=messages))


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge the ASGI lifespan messages until the server shuts the app down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return



async def _send(send: Send, response: Response) -> None:
    headers = [(b"content-type", response.content_type),
               (b"content-length", str(len(response.body)).encode()),
               *response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
