"""The console's ASGI side: which paths it owns, sessions, CSRF, security headers, static files.

`http.app.App` hands every request for a console path (`Console.owns`) to `Console.__call__`;
the API under /api/ is untouched. Pages are rendered by `pages.Pages`. Every response carries
a strict Content-Security-Policy (scripts and styles only from /static/, nothing inline).
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any
from urllib.parse import quote

from ..http.auth import AuthError, Principal, Role
from ..http.routing import HTTPError, Request, Response, Route, RouteTable, read_body
from ..store import Audit, StoreClosed, StoreUnavailable
from .actions import Actions
from .config_pages import ConfigPages
from .inbox import STREAM as INBOX_STREAM
from .inbox import Inbox
from .pages import Pages
from .render import Renderer
from .report_page import ReportPage
from .services import ConsoleServices
from .sessions import COOKIE, RECHECK, Session, Sessions, csrf_matches
from .web import HTML, SECURITY_HEADERS, cookies, form, redirect

log = logging.getLogger(__name__)

Scope = dict[str, Any]
MAX_BODY = 64 * 1024
PREFIXES = ("/conversations", "/static/", "/scenarios", "/handoffs")
PATHS = frozenset({"/", "/login", "/logout", "/overview", "/campaigns", "/campaigns/start",
                   "/campaigns/pause", "/reports"})
STATIC_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8",
                ".png": b"image/png"}
STREAMS = frozenset({"/conversations/{id}/events", INBOX_STREAM})
"""Routes that answer with an event stream (`Pages.events`) instead of a response."""


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    """The files of static/ by name, with their content type (read once)."""
    found = {}
    for entry in resources.files("intercept.console").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in STATIC_TYPES:
            found[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return found


class Console:
    """The web console, mounted by `http.app.App` at / beside the API.

    Its `reads`, `access` and `api` are the API's own, so the console reads the same read
    models, authenticates the same tokens (with the same lockout) and changes conversations
    through the same handlers.
    """

    def __init__(self, services: ConsoleServices):
        self.services = services
        self.reads, self.access, self.api = services.reads, services.access, services.api
        self.api_handlers = {(r.method, r.path): r.handler for r in self.api.routes()}
        """The API's handlers by (method, path), for those `Api` does not name itself (the
        hand-off queue's)."""
        self.sessions = Sessions()
        self.renderer = Renderer()
        self.pages = Pages(self)
        config_pages = ConfigPages(self)
        self.routes = RouteTable([*self.pages.routes(), *Actions(self).routes(),
                                  *Inbox(self).routes(), *config_pages.routes(),
                                  *ReportPage(self).routes()])
        self.scenario_route = config_pages.scenario_route()
        """/scenarios/{name}: matched here, as `RouteTable` takes numbers only."""
        self.static = _static_files()

    @staticmethod
    def owns(path: str) -> bool:
        """Whether a request path is the console's (everything else stays the app's)."""
        return path in PATHS or path.startswith(PREFIXES)

    def now(self) -> float:
        return self.services.now()

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        body = await read_body(receive, MAX_BODY)
        if body is None:
            await self.send(send, self.page_error(413, "The form is too large."))
            return
        path, method = scope["path"], scope["method"]
        if path.startswith("/static/"):
            await self.send(send, self._static(method, path))
            return
        found = self._match(method, path)
        if found is None:
            await self.send(send, self.page_error(404, "There is no such page."))
            return
        if isinstance(found, list):
            response = self.page_error(405, f"{method} is not allowed here.")
            response.headers.append((b"allow", ", ".join(found).encode()))
            await self.send(send, response)
            return
        route, params = found
        client = scope.get("client")
        request = Request(method, path, scope, body, params, client[0] if client else None)
        if route is self.scenario_route:
            request.query = path.removeprefix("/scenarios/")
        try:
            response = await self._run(route, request, receive, send)
        except HTTPError as exc:
            response = self.page_error(exc.status, exc.message, request)
        except StoreClosed:
            response = self.page_error(503, "The server is shutting down; try again shortly.")
        except StoreUnavailable as exc:
            response = self.page_error(503, f"The store cannot take changes just now: {exc}")
        except Exception:
            log.exception("console %s %s failed", method, route.path)
            response = self.page_error(500, "Something went wrong; the server log has the "
                                            "details.")
        if response is not None:
            await self.send(send, response)

    def _match(self, method: str, path: str
               ) -> tuple[Route, dict[str, int]] | list[str] | None:
        name = path.removeprefix("/scenarios/")
        if name != path and name and "/" not in name:
            return (self.scenario_route, {}) if method == "GET" else ["GET"]
        return self.routes.match(method, path)

    async def _run(self, route: Route, request: Request, receive: Any, send: Any
                   ) -> Response | None:
        session: Session | None = None
        if route.role is not None:
            session = await self.session_of(request)
            if session is None:
                if request.method == "GET":
                    return redirect("/login?next=" + quote(request.path, safe="/"))
                raise HTTPError(401, "Your session has ended: log in again.")
            request.principal, request.data = session.principal, session
            if session.principal.role < route.role:
                raise HTTPError(403, f"This needs the {route.role.name} role; you are logged "
                                     f"in as {session.principal.name} with the "
                                     f"{session.principal.role.name} role.")
        if request.method == "POST" and route.path != "/login":
            fields = form(request)
            presented = fields.get("csrf") or request.header(b"x-csrf-token")
            if session is None or not csrf_matches(session.csrf, presented):
                raise HTTPError(403, "This form has no valid CSRF token (it may have "
                                     "expired): reload the page and try again.")
        if route.path in STREAMS:  # a stream: it sends its own response
            await self.pages.events(request, receive, send)
            return None
        return await route.handler(request)

    async def session_of(self, request: Request) -> Session | None:
        """The request's live session; its token is checked again every `RECHECK` seconds."""
        now = self.now()
        session = self.sessions.find(cookies(request.scope).get(COOKIE), now)
        if session is None or now - session.checked_at < RECHECK:
            return session
        try:
            principal = await self.check_token(request, session.token)
        except AuthError as exc:
            if exc.status in (401, 403):  # revoked; a lockout or a busy store passes
                self.sessions.end(session)
                return None
            return session
        session.principal, session.checked_at = principal, now
        return session

    async def check_token(self, request: Request, token: str) -> Principal:
        """The token's principal, with the API's checks and lockout; raises `AuthError`."""
        headers = [(b"authorization", f"Bearer {token}".encode())]
        probe = Request(request.method, request.path, {**request.scope, "headers": headers},
                        b"", {}, request.client)
        return await self.access.check(probe, Role.viewer)  # type: ignore[no-any-return]

    # -- responses

    def html(self, status: int, template: str, request: Request | None = None,
             **values: Any) -> Response:
        """A page; `request.data` is the session (None before login), for the header."""
        session = request.data if request is not None else None
        body = self.renderer.render(template, session=session, **values)
        return Response(status, body.encode(), HTML, [(b"cache-control", b"no-store")])

    def page_error(self, status: int, message: str, request: Request | None = None
                   ) -> Response:
        headings = {400: "That request was not right", 401: "Please log in",
                    403: "Not allowed", 404: "Not found", 405: "Not allowed",
                    409: "That cannot be done now", 413: "Too large",
                    415: "Not shown here",
                    503: "Unavailable"}
        cid = request.params.get("id") if request is not None else None
        response = self.html(status, "error.html", request, code=status,
                             heading=headings.get(status, "Error"), error=message,
                             back=None if cid is None or status == 404 else
                             f"/conversations/{cid}")
        response.detail = message[:200]
        return response

    def _static(self, method: str, path: str) -> Response:
        found = self.static.get(path.removeprefix("/static/"))
        if method != "GET" or found is None:
            return self.page_error(404 if found is None else 405, "There is no such file.")
        body, kind = found
        return Response(200, body, kind, [(b"cache-control", b"public, max-age=3600")])

    async def send(self, send: Any, response: Response) -> None:
        headers = [(b"content-type", response.content_type),
                   (b"content-length", str(len(response.body)).encode()),
                   *SECURITY_HEADERS, *response.headers]
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def audit(self, request: Request, action: str, status: int, detail: str, *,
                    principal: Principal | None = None) -> None:
        """An audit row, as the API writes one (never a message body or a full number)."""
        who = principal or request.principal
        op = Audit(at=self.now(), actor=who.name if who else "anonymous",
                   role=who.role.name if who else "", action=action, status=status,
                   conversation_id=request.params.get("id"), detail=detail[:200])
        try:
            await self.services.store.call(op)
        except StoreClosed:
            log.warning("audit row for %s (status %d) not written: the store is closed",
                        action, status)
