"""Read queries behind buyer profiles and evidence bundles (`intercept.buyers`).

Plain functions of a read connection, like those of `reads.py`. They read what one buyer
conversation or number holds; which conversations may be read at all is decided by
`reads.buyer_conversation_ids` (buyer data only, never a victim's).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import msgspec


class OutboxLine(msgspec.Struct, frozen=True):
    """One message we sent (or will send) in a conversation."""

    body: str | None
    status: str
    kind: str
    at: float | None
    """When it went out, or is due (sent_at, else not_before, else created_at)."""
    created_at: float | None


class PhotoRow(msgspec.Struct, frozen=True):
    """One media item a buyer sent."""

    media_id: int
    conversation_id: int
    status: str
    sha256: str | None
    content_type: str | None
    size: int | None
    received_at: float | None
    error: str | None
    conv_seq: int | None
    """The sequence of the inbound message that carried it (None if that row is gone)."""


class ConversationRecord(msgspec.Struct, frozen=True):
    """What the store holds of one conversation, for its evidence summary."""

    id: int
    our_number: str
    their_number: str
    scenario: str | None
    version: int | None
    status: str
    outcome: str | None
    state: str | None
    """The engine state as JSON text."""
    inbound_count: int | None
    created_at: float | None
    updated_at: float | None
    last_inbound_at: float | None
    outbox: list[OutboxLine]
    """In the order they were written."""
    photos: list[PhotoRow]
    tags: list[str]
    """Sorted by name."""
    outcomes: list[str]
    """Kinds of the outcomes advocates recorded, oldest first."""


class NumberInfoRow(msgspec.Struct, frozen=True):
    """Offline metadata of a number (table number_info)."""

    valid: bool
    type: str
    region: str
    place: str
    timezone: str
    carrier: str
    computed_at: float | None


class CachedLookupRow(msgspec.Struct, frozen=True):
    """One cached lookup answer for a number (table lookup_cache)."""

    kind: str
    provider: str
    data: dict[str, Any]
    fetched_at: float | None


def conversations_with(conn: sqlite3.Connection, number: str, ids: list[int]) -> list[int]:
    """Those of conversations `ids` whose other side is `number`, by id."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return [r[0] for r in conn.execute(
        f"SELECT id FROM conversations WHERE their_number = ? AND id IN ({marks}) ORDER BY id",
        (number, *ids))]


def cities_of_numbers(conn: sqlite3.Connection) -> dict[str, str]:
    """The city of each of our numbers the store knows (table number_kinds)."""
    return dict(conn.execute("SELECT number, city FROM number_kinds"))


def conversation_record(conn: sqlite3.Connection, conversation_id: int) -> ConversationRecord:
    """Conversation `conversation_id` with its replies, photos, tags and advocate outcomes;
    raises `LookupError` if there is no such conversation."""
    row = conn.execute(
        "SELECT our_number, their_number, scenario, version, status, outcome, state, "
        "inbound_count, created_at, updated_at FROM conversations WHERE id = ?",
        (conversation_id,)).fetchone()
    if row is None:
        raise LookupError(f"no conversation {conversation_id}")
    outbox = [OutboxLine(*r) for r in conn.execute(
        "SELECT body, status, kind, coalesce(sent_at, not_before, created_at), created_at "
        "FROM outbox WHERE conversation_id = ? ORDER BY position", (conversation_id,))]
    last_in = conn.execute("SELECT max(received_at) FROM inbound WHERE conversation_id = ?",
                           (conversation_id,)).fetchone()[0]
    photos = [PhotoRow(*r) for r in conn.execute(
        "SELECT m.id, m.conversation_id, m.status, m.sha256, m.content_type, m.size, "
        "i.received_at, m.error, i.conv_seq FROM media m LEFT JOIN inbound i "
        "ON i.seq = m.inbound_seq WHERE m.conversation_id = ? "
        "ORDER BY m.inbound_seq, m.position", (conversation_id,))]
    tags = [r[0] for r in conn.execute("SELECT name FROM tags WHERE conversation_id = ? "
                                       "ORDER BY name", (conversation_id,))]
    outcomes = [r[0] for r in conn.execute("SELECT kind FROM advocate_outcomes WHERE "
                                           "conversation_id = ? ORDER BY at, id",
                                           (conversation_id,))]
    return ConversationRecord(conversation_id, *row, last_inbound_at=last_in, outbox=outbox,
                              photos=photos, tags=tags, outcomes=outcomes)


def number_info(conn: sqlite3.Connection, number: str) -> NumberInfoRow | None:
    """The offline metadata of `number`, if it was computed."""
    row = conn.execute("SELECT valid, type, region, place, timezone, carrier, computed_at "
                       "FROM number_info WHERE number = ?", (number,)).fetchone()
    if row is None:
        return None
    return NumberInfoRow(bool(row[0]), row[1] or "", row[2] or "", row[3] or "", row[4] or "",
                         row[5] or "", row[6])


def cached_lookups(conn: sqlite3.Connection, number: str) -> list[CachedLookupRow]:
    """The lookups cached for `number`, by kind."""
    return [CachedLookupRow(kind, provider, json.loads(data), fetched_at)
            for kind, provider, data, fetched_at in conn.execute(
                "SELECT kind, provider, data, fetched_at FROM lookup_cache WHERE number = ? "
                "ORDER BY kind", (number,))]
