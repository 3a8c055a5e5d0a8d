"""The advocates' inbox in the admin API: the hand-off queue, claim, release, assign, notes.

Mounted by `Api.routes()`; roles and audit as for the other advocate endpoints. A hand-off
another advocate claimed is not listed for an advocate and cannot be claimed or replied to
by them (409 with a sentence); an admin sees every one and may assign it to anyone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ..store import handoffs as hq
from ..store import reads as q
from . import schemas as s
from .auth import Role
from .routing import HTTPError, Request, Response, Route, json_response


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _maybe(ts: float | None) -> datetime | None:
    return None if ts is None else _time(ts)


def handoff_shape(row: hq.HandoffRow) -> s.Handoff:
    return s.Handoff(
        id=row.id, conversation_id=row.conversation_id, priority=row.priority,  # type: ignore[arg-type]
        reason=row.reason, source=row.source, opened_at=_time(row.opened_at),  # type: ignore[arg-type]
        claimed_by=row.claimed_by, claimed_at=_maybe(row.claimed_at),
        first_reply_at=_maybe(row.first_reply_at), closed_at=_maybe(row.closed_at),
        outcome=row.outcome)


def _note(n: hq.Note) -> s.Note:
    return s.Note(id=n.id, conversation_id=n.conversation_id, handoff_id=n.handoff_id,
                  author=n.author, text=n.text, at=_time(n.at))


class HandoffRoutes:
    """Handlers of the hand-off endpoints. `read(fn)` runs `fn(connection)` on the read pool,
    `write(op)` commits an op through the writer, `now()` is the server's clock and
    `conversation(row, request)` shapes a conversation for the caller's role."""

    def __init__(self, *, read: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]],
                 write: Callable[[Any], Awaitable[Any]], now: Callable[[], float],
                 conversation: Callable[[q.ConversationRow, Request], s.Conversation]):
        self.read, self.write, self.now, self.conversation = read, write, now, conversation

    def routes(self) -> list[Route]:
        err = s.ErrorBody
        tags = ("handoffs",)
        return [
            Route("GET", "/api/handoffs", self.queue, "The advocates' inbox: open hand-offs",
                  role=Role.viewer, audit=True, query=s.PageQuery,
                  responses={200: s.HandoffPage}, tags=tags,
                  description="Urgent first, then the longest open. An advocate is not "
                  "offered the hand-offs another advocate claimed; admins and viewers see "
                  "all (viewers with masked numbers). Every read is audited."),
            Route("POST", "/api/conversations/{id}/claim", self.claim,
                  "Claim a conversation's hand-off", role=Role.advocate, audit=True,
                  body=s.ClaimRequest, responses={200: s.HandoffChanged, 404: err, 409: err},
                  tags=tags, description="Only its holder may then text the person. 409 when "
                  "another advocate holds it or nothing is handed off. Texting into a "
                  "conversation claims its hand-off too."),
            Route("POST", "/api/conversations/{id}/release", self.release,
                  "Give a hand-off back to the queue", role=Role.advocate, audit=True,
                  body=s.ClaimRequest, responses={200: s.HandoffChanged, 404: err, 409: err},
                  tags=tags, description="Its holder may; an admin may release anyone's."),
            Route("POST", "/api/conversations/{id}/assign", self.assign,
                  "Give a hand-off to an advocate", role=Role.admin, audit=True,
                  body=s.AssignRequest, responses={200: s.HandoffChanged, 404: err, 409: err},
                  tags=tags, description="Whoever held it before."),
            Route("GET", "/api/conversations/{id}/notes", self.notes,
                  "Internal notes on a conversation", role=Role.advocate, audit=True,
                  responses={200: s.NoteList, 404: err}, tags=tags,
                  description="Oldest first. Notes are never sent to anyone."),
            Route("POST", "/api/conversations/{id}/notes", self.add_note,
                  "Write an internal note", role=Role.advocate, audit=True,
                  body=s.NoteRequest, responses={201: s.Note, 404: err}, tags=tags,
                  description="Tied to the open hand-off, if any."),
        ]

    async def queue(self, request: Request) -> Response:
        page: s.PageQuery = request.query
        principal = request.principal
        assert principal is not None
        only = principal.name if principal.role == Role.advocate else None
        total, items = await self.read(
            lambda conn: hq.handoff_queue(conn, page.limit, page.offset,
                                          hide_claimed_by_others_of=only))
        now = self.now()
        entries = [s.HandoffEntry(
            handoff=handoff_shape(i.handoff),
            conversation=self.conversation(i.conversation, request),
            waiting_seconds=round(max(0.0, (i.handoff.first_reply_at or now)
                                      - i.handoff.opened_at), 3),
            notes=i.notes) for i in items]
        numbers = "full numbers" if principal.role >= Role.advocate else "masked numbers"
        return json_response(200, s.HandoffPage(total=total, limit=page.limit,
                                                offset=page.offset, items=entries),
                             detail=f"{len(entries)} of {total} from {page.offset} with "
                                    f"{numbers}")

    async def _change(self, op: hq.Claim | hq.Release | hq.Assign, cid: int,
                      verb: str) -> Response:
        changed: hq.Changed = await self.write(op)
        if changed.refused == "missing":
            raise HTTPError(404, f"no conversation {cid}")
        if changed.refused == "closed":
            raise HTTPError(409, f"conversation {cid} has no open hand-off: nobody handed it "
                                 "to a person")
        if changed.refused == "held":
            raise HTTPError(409, f"conversation {cid}: advocate {changed.previous!r} has "
                                 "claimed this hand-off; ask them to release it, or an admin "
                                 "to assign it to you")
        assert changed.handoff is not None
        return json_response(200, s.HandoffChanged(handoff=handoff_shape(changed.handoff),
                                                    previous=changed.previous),
                             detail=f"{verb}; was {changed.previous or 'unclaimed'}, "
                                    f"priority {changed.handoff.priority}")

    async def claim(self, request: Request) -> Response:
        assert request.principal is not None
        cid = request.params["id"]
        return await self._change(hq.Claim(cid, request.principal.name,
                                           now=self.now()), cid, "claimed")

    async def release(self, request: Request) -> Response:
        assert request.principal is not None
        cid = request.params["id"]
        return await self._change(hq.Release(cid, request.principal.name,
                                             now=self.now(),
                                             force=request.principal.role >= Role.admin),
                                  cid, "released")

    async def assign(self, request: Request) -> Response:
        assert request.principal is not None
        body: s.AssignRequest = request.data
        cid = request.params["id"]
        advocate = body.advocate.strip()
        if not advocate:
            raise HTTPError(400, "advocate: give the name of the advocate's token")
        return await self._change(hq.Assign(cid, advocate, now=self.now(),
                                            by=request.principal.name), cid,
                                  f"assigned to {advocate}")

    async def notes(self, request: Request) -> Response:
        cid = request.params["id"]

        def read(conn: sqlite3.Connection) -> list[hq.Note] | None:
            if q.get_conversation(conn, cid) is None:
                return None
            return hq.notes(conn, cid)

        found = await self.read(read)
        if found is None:
            raise HTTPError(404, f"no conversation {cid}")
        return json_response(200, s.NoteList(items=[_note(n) for n in found]),
                             detail=f"{len(found)} notes")

    async def add_note(self, request: Request) -> Response:
        assert request.principal is not None
        cid = request.params["id"]
        body: s.NoteRequest = request.data
        try:
            op = hq.AddNote(cid, body.text, author=request.principal.name,
                            now=self.now())
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        note = await self.write(op)
        if note is None:
            raise HTTPError(404, f"no conversation {cid}")
        return json_response(201, _note(note), detail=f"note of {len(op.text)} characters")
