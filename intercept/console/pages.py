"""The console's pages: log in and out, the overview, conversations, one conversation live.

Reads use the API's read models (`store.reads`) on the API's read pool; replies and hand-backs
call the API's own handlers (`http.api.Api`), so the console changes nothing the API could
not. Lists and conversation views are audited as the API's are, naming the console's path.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import parse_qsl, urlencode

import trio

from ..buyers.media import media_path
from ..foundation.phone import mask, to_e164
from ..http import schemas as s
from ..http.auth import AuthError, Role
from ..http.routing import HTTPError, Request, Response, Route
from ..store import console_reads as cr
from ..store import handoffs as hq
from ..store import reads as q
from .notices import QueueWatch
from .numbers import NumberIndex
from .rates import Rates
from .sessions import COOKIE, LOGIN_CSRF_COOKIE, Session, csrf_matches, may_see_numbers
from .web import SECURITY_HEADERS, cookies, form, is_https, redirect, safe_next, set_cookie

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = get_args(s.Status)
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""What the console shows inline (an SVG could carry script)."""
PAGE = 50
"""Conversations per list page."""
OUTCOME_LABELS = (("positive_conversation", "A positive conversation"),
                  ("meeting_scheduled", "A meeting is scheduled"),
                  ("connected_to_services", "Connected to services"),
                  ("other", "Other (say what in the note)"))
"""The advocate outcomes (`OutcomeKind`) as the outcome form offers them."""
assert {k for k, _ in OUTCOME_LABELS} == set(get_args(s.OutcomeKind))


@dataclass(frozen=True, slots=True)
class Detail:
    """What a conversation page shows beside its read model."""

    detail: q.ConversationDetail
    extras: cr.Extras | None
    handoff: hq.HandoffRow | None
    notes: list[hq.Note] | None
    """Internal notes (advocates only)."""


@dataclass(frozen=True, slots=True)
class Shown:
    """A conversation as a page shows it: the other number masked unless the role may see it."""

    id: int
    number: str
    our_number: str
    city: str | None
    kind: str
    scenario: str | None
    version: int | None
    status: str
    outcome: str | None
    operator: bool
    messages_in: int
    messages_out: int
    tags: tuple[str, ...]
    created_at: float
    updated_at: float
    language: str = ""


class Pages:
    """The handlers; `routes()` lists them with the least role each needs."""

    poll = 0.5
    """Seconds between two looks at a conversation that a live page follows."""
    keepalive = 15.0
    """Seconds of quiet after which an event stream sends a comment (proxies close idle ones)."""
    stream_for = 300.0
    """Seconds an event stream lasts; the browser reconnects by itself."""

    def __init__(self, console: Any):
        self.console = console
        """The `app.Console` these pages belong to (its sessions, renderer, reads, API)."""
        self.streams = 0
        """Event streams open now."""
        self.numbers = NumberIndex(console.services.config)
        """Our numbers' cities and kinds, as of the last reload."""
        registry = console.services.metrics.registry

        def counters() -> tuple[float, float]:
            return (registry.get_sample_value("intercept_messages_in_total") or 0.0,
                    registry.get_sample_value("intercept_messages_out_total") or 0.0)

        self.rates = Rates(counters, time.monotonic)

    def routes(self) -> list[Route]:
        viewer, advocate = Role.viewer, Role.advocate
        return [
            Route("GET", "/login", self.login_form, "The login form"),
            Route("POST", "/login", self.login, "Trade an API token for a session"),
            Route("POST", "/logout", self.logout, "End the session", role=viewer),
            Route("GET", "/", self.overview, "The overview", role=viewer),
            Route("GET", "/overview", self.overview_part, "The overview's figures",
                  role=viewer),
            Route("GET", "/conversations", self.conversations, "Conversations", role=viewer),
            Route("GET", "/conversations/{id}", self.conversation, "One conversation",
                  role=viewer),
            Route("GET", "/conversations/{id}/live", self.live, "Its transcript and state",
                  role=viewer),
            # a stream: `Console` hands it to `events` with the ASGI receive and send
            Route("GET", "/conversations/{id}/events", self.live, "Its changes as events",
                  role=viewer),
            Route("GET", "/conversations/{id}/photos/{photo}", self.photo,
                  "A photo the other party sent", role=advocate),
        ]

    # -- shapes

    def shown(self, row: q.ConversationRow, role: Role) -> Shown:
        return Shown(
            id=row.id, number=row.their_number if may_see_numbers(role) else mask(
                row.their_number), our_number=row.our_number,
            city=self.numbers.city_label.get(row.our_number),
            kind=self.numbers.kind_of.get(row.our_number, "buyer"),
            scenario=row.scenario, version=row.version, status=row.status,
            outcome=row.outcome, operator=row.operator, messages_in=row.inbound_count,
            messages_out=row.outbound_count, tags=row.tags, created_at=row.created_at,
            updated_at=row.updated_at, language=row.language)

    @staticmethod
    def role(request: Request) -> Role:
        assert request.principal is not None
        return request.principal.role

    # -- sessions

    async def login_form(self, request: Request, error: str | None = None,
                         status: int = 200) -> Response:
        query = dict(parse_qsl(request.scope.get("query_string", b"").decode("latin-1")))
        token = cookies(request.scope).get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        response = self.console.html(status, "login.html", None, csrf=token, error=error,
                                     next=safe_next(query.get("next")))
        response.headers.append((b"set-cookie", set_cookie(
            LOGIN_CSRF_COOKIE, token, secure=is_https(request.scope), max_age=3600)))
        return response

    async def login(self, request: Request) -> Response:
        fields = form(request)
        if not csrf_matches(cookies(request.scope).get(LOGIN_CSRF_COOKIE), fields.get("csrf")):
            raise HTTPError(403, "This form has no valid CSRF token (it may have expired): "
                                 "reload the page and try again.")
        token = fields.get("token", "").strip()
        if not token:
            return await self.login_form(request, "Enter your API token.", 400)
        try:
            principal = await self.console.check_token(request, token)
        except AuthError as exc:
            if exc.audit:
                await self.console.audit(request, "POST /login", exc.status,
                                         exc.detail or exc.message)
            message = {401: "That token is not valid."}.get(exc.status, exc.message)
            return await self.login_form(request, message, exc.status)
        _, cookie = self.console.sessions.create(principal, token, self.console.now())
        await self.console.audit(request, "POST /login", 303, "console session started",
                                 principal=principal)
        secure = is_https(request.scope)
        return redirect(safe_next(fields.get("next")),
                        (b"set-cookie", set_cookie(COOKIE, cookie, secure=secure,
                                                   max_age=self.console.sessions.lifetime)),
                        (b"set-cookie", set_cookie(LOGIN_CSRF_COOKIE, "", secure=secure,
                                                   max_age=0)))

    async def logout(self, request: Request) -> Response:
        session: Session = request.data
        self.console.sessions.end(session)
        await self.console.audit(request, "POST /logout", 303, "console session ended")
        return redirect("/login", (b"set-cookie", set_cookie(
            COOKIE, "", secure=is_https(request.scope), max_age=0)))

    # -- the overview

    async def _overview_values(self) -> dict[str, Any]:
        stats = await self.console.reads.run(q.stats)
        handoffs = await self.console.reads.run(cr.open_handoffs)
        rate_in, rate_out = self.rates.sample()
        return {"health": self.console.services.health(), "stats": stats, "rate_in": rate_in,
                "rate_out": rate_out, "now": self.console.now(), "handoffs": len(handoffs),
                "urgent": sum(h.priority == "urgent" for h in handoffs)}

    async def overview(self, request: Request) -> Response:
        return self.console.html(200, "overview.html", request, page="overview",
                                 **await self._overview_values())

    async def overview_part(self, request: Request) -> Response:
        return self.console.html(200, "_overview.html", request,
                                 **await self._overview_values())

    # -- conversations

    def _filter(self, request: Request, fields: dict[str, str]) -> q.ConversationFilter:
        """The list's filter from the query; raises `HTTPError` 400/403 naming the field."""
        our: set[str] | None = None
        city = fields.get("city")
        if city:
            if city not in dict(self.numbers.cities):
                raise HTTPError(400, f"There is no city {city!r}; the cities are "
                                     f"{', '.join(k for k, _ in self.numbers.cities) or 'none'}.")
            our = {n for n, c in self.numbers.city_of.items() if c == city}
        kind = fields.get("kind")
        if kind:
            if kind not in ("buyer", "outreach"):
                raise HTTPError(400, "Kind is buyer or outreach.")
            of_kind = {n for n, k in self.numbers.kind_of.items() if k == kind}
            our = of_kind if our is None else our & of_kind
        status = fields.get("status") or None
        if status is not None and status not in STATUSES:
            raise HTTPError(400, f"State is one of {', '.join(STATUSES)}.")
        their = None
        if fields.get("number"):
            if not may_see_numbers(self.role(request)):
                raise HTTPError(403, "Searching by phone number needs the advocate role.")
            their = to_e164(fields["number"])
            if their is None:
                raise HTTPError(400, f"{fields['number']!r} is not a valid phone number.")
        return q.ConversationFilter(status=status, outcome=fields.get("outcome") or None,
                                    our_numbers=None if our is None else tuple(sorted(our)),
                                    their_number=their)

    async def conversations(self, request: Request) -> Response:
        fields = {k: v.strip() for k, v in parse_qsl(
            request.scope.get("query_string", b"").decode("utf-8", "replace"))}
        where = self._filter(request, fields)
        try:
            offset = max(0, int(fields.get("offset") or 0))
        except ValueError:
            raise HTTPError(400, "Offset is a whole number.") from None
        total, rows = await self.console.reads.run(q.list_conversations, where, PAGE, offset)
        stats = await self.console.reads.run(q.stats)
        role = self.role(request)
        kept = {k: v for k, v in fields.items() if v and k != "offset"}

        def link(at: int) -> str:
            return "/conversations?" + urlencode({**kept, "offset": at} if at else kept)

        full = may_see_numbers(role)
        shown = {**kept, **({"number": mask(where.their_number)} if where.their_number else {})}
        searched = ", ".join(f"{k}={v}" for k, v in shown.items())
        await self.console.audit(request, "GET /conversations", 200,
                                 f"{len(rows)} of {total} from {offset} with "
                                 f"{'full' if full else 'masked'} numbers"
                                 + (f"; {searched}" if searched else ""))
        return self.console.html(
            200, "conversations.html", request, page="conversations",
            rows=[self.shown(r, role) for r in rows], total=total, offset=offset,
            form={name: fields.get(name, "") for name in ("city", "kind", "status", "outcome",
                                                          "number")},
            cities=self.numbers.cities, statuses=STATUSES, outcomes=sorted(stats.by_outcome),
            full_numbers=full, prev_link=link(max(0, offset - PAGE)) if offset else None,
            next_link=link(offset + PAGE) if offset + PAGE < total else None)

    async def _detail(self, cid: int, extras: bool) -> Detail:
        """The conversation, its open hand-off and, with `extras` (advocates), its lookups,
        photos and internal notes; raises `HTTPError` 404."""

        def read(conn: sqlite3.Connection) -> Detail | None:
            detail = q.conversation_detail(conn, cid)
            if detail is None:
                return None
            return Detail(detail, cr.conversation_extras(conn, cid) if extras else None,
                          hq.open_handoff(conn, cid), hq.notes(conn, cid) if extras else None)

        found: Detail | None = await self.console.reads.run(read)
        if found is None:
            raise HTTPError(404, f"There is no conversation {cid}.")
        return found

    async def conversation(self, request: Request) -> Response:
        cid = request.params["id"]
        role = self.role(request)
        full = may_see_numbers(role)
        found = await self._detail(cid, full)
        detail, handoff = found.detail, found.handoff
        notes = "" if found.notes is None else f" and {len(found.notes)} notes"
        await self.console.audit(request, "GET /conversations/{id}", 200,
                                 f"{len(detail.transcript)} messages{notes} with "
                                 f"{'full' if full else 'masked'} numbers")
        assert request.principal is not None
        held_by_other = (handoff is not None and handoff.claimed_by is not None
                         and handoff.claimed_by != request.principal.name
                         and role < Role.admin)
        return self.console.html(
            200, "conversation.html", request, page="conversations",
            c=self.shown(detail.conversation, role), transcript=detail.transcript,
            transitions=detail.transitions, outcomes=detail.outcomes, extras=found.extras,
            handoff=handoff, notes=found.notes, held_by_other=held_by_other,
            may_act=role >= Role.advocate, is_admin=role >= Role.admin,
            outcome_kinds=OUTCOME_LABELS, photo_types=PHOTO_TYPES)

    async def live(self, request: Request) -> Response:
        """The live part of a conversation page (state, hand-off, tags, transcript), for
        htmx."""
        cid = request.params["id"]
        found = await self._detail(cid, False)
        return self.console.html(200, "_live.html", request,
                                 c=self.shown(found.detail.conversation, self.role(request)),
                                 transcript=found.detail.transcript, handoff=found.handoff)

    async def events(self, request: Request, receive: Any, send: Any) -> None:
        """Server-sent events: ``changed`` whenever the page's conversation does (polled every
        `poll` seconds; not on /handoffs/events), ``handoffs`` with counts whenever the
        hand-offs the user is offered do, a comment after `keepalive` seconds of quiet; ends
        after `stream_for` seconds, when the session does (the browser then reconnects) or
        when the browser goes away."""
        cid: int | None = request.params.get("id")
        stamp = None
        if cid is not None:
            stamp = await self.console.reads.run(cr.change_stamp, cid)
            if stamp is None:
                raise HTTPError(404, f"There is no conversation {cid}.")
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no"),
            *SECURITY_HEADERS]})
        self.streams += 1
        try:
            async with trio.open_nursery() as nursery:

                async def until_gone() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_gone)
                try:
                    await self._stream(request, send, cid, stamp)
                except Exception as exc:  # the response has started: end it, do not answer
                    log.warning("%s: its event stream ended early: %s",
                                "the inbox" if cid is None else f"conversation {cid}",
                                exc.__class__.__name__)
                    await send({"type": "http.response.body", "body": b"",
                                "more_body": False})
                nursery.cancel_scope.cancel()
        finally:
            self.streams -= 1

    @staticmethod
    def _look(conn: sqlite3.Connection, cid: int | None, hide: str | None
              ) -> tuple[Any, list[cr.OpenHandoff]]:
        stamp = None if cid is None else cr.change_stamp(conn, cid)
        return stamp, cr.open_handoffs(conn, hide)

    async def _stream(self, request: Request, send: Any, cid: int | None, stamp: Any) -> None:
        session: Session = request.data
        principal = session.principal
        hide = principal.name if principal.role == Role.advocate else None  # as the API's queue
        watch = QueueWatch()
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n",
                    "more_body": True})
        # the page may have changed since it was rendered: the first events refresh it
        _, queue = await self.console.reads.run(self._look, None, hide)
        chunk = (b"" if cid is None else b"event: changed\ndata: 0\n\n") + watch.look(queue)
        sent_at = trio.current_time()
        end = sent_at + self.stream_for
        changes = 0
        while True:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent_at, chunk = trio.current_time(), b""
            await trio.sleep(self.poll)
            now = trio.current_time()
            if now >= end or self.console.sessions.find_live(session, self.console.now()) \
                    is None:
                break
            latest, queue = await self.console.reads.run(self._look, cid, hide)
            if cid is not None and latest is None:
                chunk = b"event: gone\ndata: deleted\n\n"
            elif cid is not None and latest != stamp:
                stamp, changes = latest, changes + 1
                chunk = f"event: changed\ndata: {changes}\n\n".encode()
            chunk += watch.look(queue)
            if not chunk and now - sent_at >= self.keepalive:
                chunk = b": still here\n\n"
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def photo(self, request: Request) -> Response:
        """A stored photo, as an image of a safe type (never SVG), audited."""
        cid, media_id = request.params["id"], request.params["photo"]
        found = await self.console.reads.run(cr.stored_photo, cid, media_id)
        if found is None:
            raise HTTPError(404, f"Conversation {cid} has no stored photo {media_id}.")
        sha256, content_type = found
        if content_type not in PHOTO_TYPES:
            raise HTTPError(415, f"Photo {media_id} is {content_type or 'of no known type'}; "
                                 "the console shows JPEG, PNG, GIF and WebP only (the "
                                 "evidence export has every file).")
        path = media_path(self.console.services.config.media_dir, sha256)
        try:
            body = await trio.to_thread.run_sync(path.read_bytes)
        except OSError as exc:
            raise HTTPError(404, f"Photo {media_id} is missing from the media folder "
                                 f"({exc.strerror}).") from None
        await self.console.audit(request, "GET /conversations/{id}/photos/{photo}", 200,
                                 f"photo {media_id} ({content_type}, {len(body)} bytes)")
        return Response(200, body, content_type.encode(), [
            (b"cache-control", b"no-store"), (b"content-disposition", b"inline")])
