"""The advocates' hand-offs: claiming, releasing, assigning, notes, and the queue they read.

A hand-off opens when the scenario gives a conversation to a person (`CommitStep`), or when an
advocate texts into one the bot had (`OperatorSend`, already claimed by them); it closes when
the conversation is handed back (`HandBack`). The rows those writes keep are in
`handoff_rows.py`; here are the advocates' own writes (ops for the writer) and the reads (plain
functions on a read connection, for `Reads.run`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from sqlite3 import Cursor
from typing import Final

from .handoff_rows import PRIORITIES
from .ops import Op, WriterCache
from .reads import _CONVERSATION_COLUMNS, ConversationRow, _conversation

__all__ = ["PRIORITIES"]

NOTE_MAX: Final = 4000
"""The longest internal note, in characters."""


class HandoffClaimed(PermissionError):
    """Another advocate holds the conversation's hand-off."""

    def __init__(self, advocate: str):
        self.advocate = advocate
        super().__init__(f"advocate {advocate!r} has claimed this hand-off; ask them to release "
                         "it, or an admin to assign it to you")


@dataclass(frozen=True, slots=True)
class HandoffRow:
    id: int
    conversation_id: int
    priority: str
    reason: str
    source: str
    """scenario (the bot handed off), takeover (an advocate texted first) or backfill."""
    opened_at: float
    claimed_by: str | None
    claimed_at: float | None
    first_reply_at: float | None
    closed_at: float | None
    outcome: str | None


_HANDOFF_COLUMNS = ("h.id, h.conversation_id, h.priority, coalesce(h.reason, ''), h.source, "
                    "h.opened_at, h.claimed_by, h.claimed_at, h.first_reply_at, h.closed_at, "
                    "h.outcome")
_OPEN = "SELECT " + _HANDOFF_COLUMNS + " FROM handoffs h WHERE h.conversation_id = ? " \
        "AND h.closed_at IS NULL"


def _open_handoff(cur: Cursor | sqlite3.Connection, conversation_id: int) -> HandoffRow | None:
    row = cur.execute(_OPEN, (conversation_id,)).fetchone()
    return None if row is None else HandoffRow(*row)


@dataclass(frozen=True, slots=True)
class Changed:
    """What a claim, release or assignment did. `refused` is a sentence when it did nothing:
    `missing` (no such conversation) or `closed` (no open hand-off) or `held` (another
    advocate holds it)."""

    handoff: HandoffRow | None
    refused: str = ""
    previous: str | None = None
    """Who held it before."""


class _Change(Op):
    __slots__ = ("advocate", "by", "conversation_id", "now")

    def __init__(self, conversation_id: int, advocate: str, *, now: float, by: str = ""):
        self.conversation_id, self.advocate, self.now = conversation_id, advocate, now
        self.by = by or advocate

    def _find(self, cur: Cursor) -> HandoffRow | Changed:
        found = _open_handoff(cur, self.conversation_id)
        if found is not None:
            return found
        exists = cur.execute("SELECT 1 FROM conversations WHERE id = ?",
                             (self.conversation_id,)).fetchone()
        return Changed(None, "missing" if exists is None else "closed")

    def _set(self, cur: Cursor, handoff: HandoffRow, claimed_by: str | None) -> Changed:
        cur.execute("UPDATE handoffs SET claimed_by = ?, claimed_at = ? WHERE id = ?",
                    (claimed_by, None if claimed_by is None else self.now, handoff.id))
        return Changed(_open_handoff(cur, self.conversation_id), previous=handoff.claimed_by)


class Claim(_Change):
    """`advocate` takes the conversation's open hand-off (again: no change). Refused (`held`)
    when another advocate holds it."""

    __slots__ = ()

    def apply(self, cur: Cursor, cache: WriterCache) -> Changed:
        found = self._find(cur)
        if isinstance(found, Changed):
            return found
        if found.claimed_by not in (None, self.advocate):
            return Changed(found, "held", previous=found.claimed_by)
        if found.claimed_by == self.advocate:
            return Changed(found, previous=found.claimed_by)
        return self._set(cur, found, self.advocate)


class Release(_Change):
    """`advocate` gives the hand-off back to the queue. Only its holder may, unless `force`
    (an admin). Refused (`held`) otherwise."""

    __slots__ = ("force",)

    def __init__(self, conversation_id: int, advocate: str, *, now: float, force: bool = False):
        super().__init__(conversation_id, advocate, now=now)
        self.force = force

    def apply(self, cur: Cursor, cache: WriterCache) -> Changed:
        found = self._find(cur)
        if isinstance(found, Changed):
            return found
        if found.claimed_by is not None and found.claimed_by != self.advocate and not self.force:
            return Changed(found, "held", previous=found.claimed_by)
        return self._set(cur, found, None)


class Assign(_Change):
    """An admin (`by`) gives the hand-off to `advocate`, whoever held it."""

    __slots__ = ()

    def apply(self, cur: Cursor, cache: WriterCache) -> Changed:
        found = self._find(cur)
        if isinstance(found, Changed):
            return found
        return self._set(cur, found, self.advocate)


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    conversation_id: int
    handoff_id: int | None
    author: str
    text: str
    at: float


class AddNote(Op):
    """An internal note on a conversation (never sent), tied to its open hand-off if any.
    Returns the note, or None when there is no such conversation."""

    __slots__ = ("author", "conversation_id", "now", "text")

    def __init__(self, conversation_id: int, text: str, *, author: str, now: float):
        text = text.strip()
        if not text:
            raise ValueError("the note is empty")
        if len(text) > NOTE_MAX:
            raise ValueError(f"the note is {len(text)} characters; keep it under {NOTE_MAX}")
        self.conversation_id, self.text, self.author, self.now = (
            conversation_id, text, author, now)

    def apply(self, cur: Cursor, cache: WriterCache) -> Note | None:
        if cur.execute("SELECT 1 FROM conversations WHERE id = ?",
                       (self.conversation_id,)).fetchone() is None:
            return None
        handoff = _open_handoff(cur, self.conversation_id)
        handoff_id = None if handoff is None else handoff.id
        cur.execute("INSERT INTO handoff_notes (conversation_id, handoff_id, author, text, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self.conversation_id, handoff_id, self.author, self.text, self.now))
        return Note(cur.lastrowid or 0, self.conversation_id, handoff_id, self.author,
                    self.text, self.now)


# -- for the alerts and metrics (runtime/handoff_alerts.py), read through the writer


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The open hand-offs as alerts and metrics need them: counts only, never a number or a
    message."""

    open_by_priority: dict[str, int]
    oldest_waiting_since: float | None
    """When the longest-waiting open hand-off no advocate has answered yet was opened."""
    unalerted: list[tuple[int, str]]
    """(id, priority) of open hand-offs not yet alerted, oldest first."""
    first_replies: list[tuple[float, float]]
    """(opened_at, first_reply_at) of scenario hand-offs first answered after `since`."""


class TakeSnapshot(Op):
    """Read the `QueueSnapshot` (first replies answered after `since`)."""

    __slots__ = ("since",)

    def __init__(self, *, since: float):
        self.since = since

    def apply(self, cur: Cursor, cache: WriterCache) -> QueueSnapshot:
        counts = dict.fromkeys(PRIORITIES, 0)
        counts.update(cur.execute("SELECT priority, count(*) FROM handoffs WHERE closed_at IS "
                                  "NULL GROUP BY priority").fetchall())
        oldest = cur.execute("SELECT min(opened_at) FROM handoffs WHERE closed_at IS NULL AND "
                             "first_reply_at IS NULL").fetchone()[0]
        unalerted = [(r[0], r[1]) for r in cur.execute(
            "SELECT id, priority FROM handoffs WHERE closed_at IS NULL AND alerted_at IS NULL "
            "ORDER BY opened_at, id")]
        replies = [(r[0], r[1]) for r in cur.execute(
            "SELECT opened_at, first_reply_at FROM handoffs WHERE source = 'scenario' AND "
            "first_reply_at > ? ORDER BY first_reply_at", (self.since,))]
        return QueueSnapshot(counts, oldest, unalerted, replies)


class MarkAlerted(Op):
    """Record that these hand-offs were alerted (so they are not alerted again)."""

    __slots__ = ("ids", "now")

    def __init__(self, ids: list[int], *, now: float):
        self.ids, self.now = ids, now

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.executemany("UPDATE handoffs SET alerted_at = ? WHERE id = ? AND alerted_at IS NULL",
                        [(self.now, i) for i in self.ids])


# -- reads for the API (Reads.run)


@dataclass(frozen=True, slots=True)
class QueueItem:
    handoff: HandoffRow
    conversation: ConversationRow
    notes: int


def handoff_queue(conn: sqlite3.Connection, limit: int, offset: int, *,
                  hide_claimed_by_others_of: str | None = None
                  ) -> tuple[int, list[QueueItem]]:
    """Open hand-offs, urgent first, then the longest open. With
    `hide_claimed_by_others_of`, an advocate's view: those another advocate claimed are left
    out."""
    where, params = "h.closed_at IS NULL", []
    if hide_claimed_by_others_of is not None:
        where += " AND (h.claimed_by IS NULL OR h.claimed_by = ?)"
        params.append(hide_claimed_by_others_of)
    total = conn.execute(f"SELECT count(*) FROM handoffs h WHERE {where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_HANDOFF_COLUMNS}, (SELECT count(*) FROM handoff_notes n WHERE "
        f"n.handoff_id = h.id), {_CONVERSATION_COLUMNS} FROM handoffs h JOIN conversations c "
        f"ON c.id = h.conversation_id WHERE {where} "
        "ORDER BY h.priority = 'urgent' DESC, h.opened_at, h.id LIMIT ? OFFSET ?",
        [*params, limit, offset])
    width = len(HandoffRow.__slots__)
    return total, [QueueItem(HandoffRow(*r[:width]), _conversation(r[width + 1:]), r[width])
                   for r in rows]


def open_handoff(conn: sqlite3.Connection, conversation_id: int) -> HandoffRow | None:
    """The conversation's open hand-off, if any."""
    return _open_handoff(conn, conversation_id)


def notes(conn: sqlite3.Connection, conversation_id: int) -> list[Note]:
    """The internal notes on a conversation, oldest first."""
    return [Note(*r) for r in conn.execute(
        "SELECT id, conversation_id, handoff_id, author, text, at FROM handoff_notes "
        "WHERE conversation_id = ? ORDER BY at, id", (conversation_id,))]
