"""What the web console reads besides the API's read models (store/reads.py): a conversation's
change stamp (for live updates), its lookups and its photos, and the open hand-offs (for the
inbox's counts). Plain functions of a connection."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


def change_stamp(conn: sqlite3.Connection, conversation_id: int) -> tuple[Any, ...] | None:
    """Something that changes whenever the conversation's transcript, state or open
    hand-off (its priority, who holds it) does."""
    return conn.execute(
        "SELECT c.updated_at, c.status, c.operator, c.outcome, "
        "(SELECT count(*) FROM inbound i WHERE i.conversation_id = c.id), "
        "(SELECT count(*) || ':' || coalesce(max(o.updated_at), 0) || ':' || "
        " coalesce(group_concat(o.status), '') FROM outbox o WHERE o.conversation_id = c.id), "
        "(SELECT count(*) FROM tags t WHERE t.conversation_id = c.id), "
        "(SELECT h.id || ':' || h.priority || ':' || coalesce(h.claimed_by, '') FROM handoffs h "
        " WHERE h.conversation_id = c.id AND h.closed_at IS NULL) "
        "FROM conversations c WHERE c.id = ?", (conversation_id,)).fetchone()


@dataclass(frozen=True, slots=True)
class LookupLine:
    """One fact known about the other party's number (offline metadata or a cached lookup)."""

    source: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class PhotoLine:
    media_id: int
    status: str
    content_type: str | None
    size: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Extras:
    lookups: list[LookupLine]
    photos: list[PhotoLine]


def conversation_extras(conn: sqlite3.Connection, conversation_id: int) -> Extras:
    """The lookups of the conversation's other number and the photos it sent."""
    lookups: list[LookupLine] = []
    row = conn.execute("SELECT their_number FROM conversations WHERE id = ?",
                       (conversation_id,)).fetchone()
    if row is not None:
        info = conn.execute("SELECT type, region, place, timezone, carrier FROM number_info "
                            "WHERE number = ?", (row[0],)).fetchone()
        if info is not None:
            for name, value in zip(("type", "region", "place", "timezone", "carrier"), info,
                                   strict=True):
                if value:
                    lookups.append(LookupLine("number", name, str(value)))
        for kind, data in conn.execute("SELECT kind, data FROM lookup_cache WHERE number = ? "
                                       "ORDER BY kind", (row[0],)):
            try:
                fields = json.loads(data)
            except ValueError:
                continue
            if isinstance(fields, dict):
                lookups.extend(LookupLine(kind, str(k), str(v)) for k, v in fields.items()
                               if v not in (None, ""))
    photos = [PhotoLine(*r) for r in conn.execute(
        "SELECT id, status, content_type, size, error FROM media WHERE conversation_id = ? "
        "ORDER BY inbound_seq, position", (conversation_id,))]
    return Extras(lookups, photos)


def stored_photo(conn: sqlite3.Connection, conversation_id: int, media_id: int
                 ) -> tuple[str, str] | None:
    """(sha256, content type) of a photo of this conversation that is on disk, else None."""
    row = conn.execute("SELECT sha256, content_type FROM media WHERE id = ? AND "
                       "conversation_id = ? AND status = 'stored' AND sha256 IS NOT NULL",
                       (media_id, conversation_id)).fetchone()
    return None if row is None else (row[0], row[1] or "")


@dataclass(frozen=True, slots=True)
class OpenHandoff:
    """An open hand-off as the console's notifications need it: never a number or a text."""

    id: int
    priority: str
    claimed_by: str | None
    answered: bool


def open_handoffs(conn: sqlite3.Connection, hide_claimed_by_others_of: str | None = None
                  ) -> list[OpenHandoff]:
    """The open hand-offs (urgent first, then oldest); with `hide_claimed_by_others_of`, an
    advocate's view: those another advocate claimed are left out, as in the API's queue."""
    where, params = "closed_at IS NULL", []
    if hide_claimed_by_others_of is not None:
        where += " AND (claimed_by IS NULL OR claimed_by = ?)"
        params.append(hide_claimed_by_others_of)
    return [OpenHandoff(r[0], r[1], r[2], bool(r[3])) for r in conn.execute(
        f"SELECT id, priority, claimed_by, first_reply_at IS NOT NULL FROM handoffs "
        f"WHERE {where} ORDER BY priority = 'urgent' DESC, opened_at, id", params)]
