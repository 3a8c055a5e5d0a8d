"""Read-only queries for the admin API, on their own SQLite connections.

The writer (`writer.py`) owns the only write connection and sits on the message path; the API
must not queue behind it. So `Reads` keeps a small pool of separate connections (WAL lets them
read while the writer commits), runs each query function in a worker thread, and opens one
read transaction per call so that a count and its page come from the same snapshot.

Query functions are plain synchronous functions of a connection, usable in tests and scripts:
`await reads.run(list_conversations, ConversationFilter(status="active"), 50, 0)`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import outcome
import trio

from .advocacy import RecordedOutcome
from .opening import DB_ERRORS, StoreError, open_connection

T = TypeVar("T")


class Reads:
    """A pool of read-only connections to the store at `path`; `size` queries run at once."""

    def __init__(self, path: str | Path, *, size: int = 2, key: str = ""):
        if str(path) == ":memory:":
            raise ValueError("the admin API needs a store file; ':memory:' cannot be shared")
        self.path = str(path)
        self.key = key
        self._limit = trio.Semaphore(max(1, size))
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` in a worker thread inside one read transaction."""
        if self._closed:
            raise RuntimeError("the read pool is closed")
        async with self._limit:
            conn = self._idle.pop() if self._idle else None
            conn, result = await trio.to_thread.run_sync(self._call, conn, fn, args)
            if conn is not None:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)
            return result.unwrap()

    def _call(self, conn: sqlite3.Connection | None, fn: Callable[..., T], args: Sequence[Any]
              ) -> tuple[sqlite3.Connection | None, outcome.Outcome[T]]:
        try:
            if conn is None:
                conn = self._connect()
        except (StoreError, *DB_ERRORS) as exc:
            return None, outcome.Error(exc)
        try:
            conn.execute("BEGIN")
            try:
                return conn, outcome.capture(fn, conn, *args)
            finally:
                conn.execute("COMMIT")
        except DB_ERRORS as exc:  # the connection itself is broken: drop it
            conn.close()
            return None, outcome.Error(exc)

    def _connect(self) -> sqlite3.Connection:
        conn = open_connection(self.path, self.key, check_same_thread=False,
                               isolation_level=None, timeout=10.0)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def close(self) -> None:
        """Close idle connections now and busy ones when their query returns."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


# -- conversations


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """Filters of a conversation search; None means "any"."""

    status: str | None = None
    outcome: str | None = None
    our_numbers: tuple[str, ...] | None = None
    """Only conversations on these numbers of ours (a city is a set of numbers)."""
    scenario: str | None = None
    version: int | None = None
    since: float | None = None
    """Started at or after (epoch seconds)."""
    until: float | None = None
    """Started before (epoch seconds)."""
    operator: bool | None = None
    tag: str | None = None
    their_number: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: int
    our_number: str
    their_number: str
    scenario: str | None
    version: int | None
    status: str
    outcome: str | None
    operator: bool
    inbound_count: int
    outbound_count: int
    tags: tuple[str, ...]
    created_at: float
    updated_at: float
    language: str = ""
    """The conversation's language in a scenario of several ("" otherwise)."""


_CONVERSATION_COLUMNS = (
    "c.id, c.our_number, c.their_number, c.scenario, c.version, c.status, c.outcome, "
    "c.operator, c.inbound_count, "
    "(SELECT count(*) FROM outbox o WHERE o.conversation_id = c.id), "
    "(SELECT group_concat(name, char(10)) FROM (SELECT name FROM tags t "
    " WHERE t.conversation_id = c.id ORDER BY name)), "
    "c.created_at, c.updated_at, "
    "coalesce(CASE WHEN json_valid(c.state) THEN json_extract(c.state, '$.vars.language') END, "
    "'')")


_CONVERSATION_WIDTH = len(ConversationRow.__slots__)
"""How many of a row's columns `_CONVERSATION_COLUMNS` are."""


def _conversation(row: Sequence[Any]) -> ConversationRow:
    tags = tuple(row[10].split("\n")) if row[10] else ()
    return ConversationRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]),
                           row[8], row[9], tags, row[11] or 0.0, row[12] or 0.0,
                           row[13] if isinstance(row[13], str) else "")


def list_conversations(conn: sqlite3.Connection, where: ConversationFilter, limit: int,
                       offset: int) -> tuple[int, list[ConversationRow]]:
    """The total matching `where`, and one page of them, newest first."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("status", "outcome", "scenario", "version"):
        value = getattr(where, column)
        if value is not None:
            clauses.append(f"c.{column} = ?")
            params.append(value)
    if where.our_numbers is not None:
        clauses.append(f"c.our_number IN ({','.join('?' * len(where.our_numbers))})"
                       if where.our_numbers else "0")
        params.extend(where.our_numbers)
    if where.since is not None:
        clauses.append("c.created_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("c.created_at < ?")
        params.append(where.until)
    if where.operator is not None:
        clauses.append("c.operator = ?")
        params.append(int(where.operator))
    if where.tag is not None:
        clauses.append("EXISTS (SELECT 1 FROM tags t WHERE t.conversation_id = c.id "
                       "AND t.name = ?)")
        params.append(where.tag)
    if where.their_number is not None:
        clauses.append("c.their_number = ?")
        params.append(where.their_number)
    sql_where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    total = conn.execute(f"SELECT count(*) FROM conversations c{sql_where}", params).fetchone()[0]
    rows = conn.execute(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c{sql_where} "
                        "ORDER BY c.id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
    return total, [_conversation(r) for r in rows]


def get_conversation(conn: sqlite3.Connection, conversation_id: int) -> ConversationRow | None:
    row = conn.execute(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?",
                       (conversation_id,)).fetchone()
    return None if row is None else _conversation(row)


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One message of a transcript: `direction` is "in" (theirs) or "out" (ours)."""

    direction: str
    at: float
    id: str
    text: str
    media: tuple[str, ...] = ()
    kind: str | None = None
    """Out only: reply (the bot), operator (a human), confirmation (opt-out/in)."""
    status: str | None = None
    """Out only: queued, sending, sent, delivered, failed, unknown, refused."""
    error: str | None = None
    sent_by: str | None = None
    """Out, kind operator: the advocate who wrote it (None before this was recorded)."""


@dataclass(frozen=True, slots=True)
class TransitionRow:
    turn: int
    source: str
    target: str
    trigger: str
    scenario: str
    version: int
    at: float


@dataclass(slots=True)
class ConversationDetail:
    conversation: ConversationRow
    transcript: list[TranscriptLine] = field(default_factory=list)
    tags: list[tuple[str, float]] = field(default_factory=list)
    transitions: list[TransitionRow] = field(default_factory=list)
    outcomes: list[RecordedOutcome] = field(default_factory=list)


def transcript(conn: sqlite3.Connection, conversation_id: int) -> list[TranscriptLine]:
    """Inbound and outbound messages merged by time (an unsent reply at its not-before time)."""
    lines: list[tuple[float, int, int, TranscriptLine]] = []
    for seq, body, media, at in conn.execute(
            "SELECT conv_seq, body, media, received_at FROM inbound WHERE conversation_id = ? "
            "ORDER BY conv_seq", (conversation_id,)):
        line = TranscriptLine("in", at or 0.0, str(seq), body or "",
                              tuple(json.loads(media)) if media else ())
        lines.append((line.at, 0, seq, line))
    for oid, position, body, kind, status, at, error, sent_by in conn.execute(
            "SELECT id, position, body, kind, status, coalesce(sent_at, not_before, created_at), "
            "error, sent_by FROM outbox WHERE conversation_id = ? ORDER BY position",
            (conversation_id,)):
        line = TranscriptLine("out", at or 0.0, oid, body or "", kind=kind, status=status,
                              error=error, sent_by=sent_by)
        lines.append((line.at, 1, position or 0, line))
    lines.sort(key=lambda item: item[:3])
    return [item[3] for item in lines]


def conversation_detail(conn: sqlite3.Connection, conversation_id: int
                        ) -> ConversationDetail | None:
    """A conversation with its transcript, tags, funnel transitions and advocate outcomes."""
    row = get_conversation(conn, conversation_id)
    if row is None:
        return None
    detail = ConversationDetail(row, transcript(conn, conversation_id))
    detail.tags = [(name, at or 0.0) for name, at in conn.execute(
        "SELECT name, created_at FROM tags WHERE conversation_id = ? ORDER BY created_at, name",
        (conversation_id,))]
    detail.transitions = [TransitionRow(*r) for r in conn.execute(
        "SELECT turn, source, target, trigger, scenario, version, at FROM transitions "
        "WHERE conversation_id = ? ORDER BY id", (conversation_id,))]
    detail.outcomes = outcomes(conn, conversation_id)
    return detail


def outcomes(conn: sqlite3.Connection, conversation_id: int) -> list[RecordedOutcome]:
    """The outcomes advocates recorded on a conversation, oldest first."""
    return [RecordedOutcome(*r) for r in conn.execute(
        "SELECT id, conversation_id, kind, coalesce(note, ''), author, at "
        "FROM advocate_outcomes WHERE conversation_id = ? ORDER BY at, id", (conversation_id,))]


# -- buyer data only (the law-enforcement side): never a victim's conversation or number

BUYER_ONLY_SQL = """
c.kind = 'buyer'
AND NOT EXISTS (SELECT 1 FROM found_numbers f WHERE f.number = c.their_number)
AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.their_number = c.their_number
                AND o.kind = 'outreach')
AND NOT EXISTS (SELECT 1 FROM campaign_targets t WHERE t.number = c.their_number)
"""
"""Conversations (alias c) that are buyer data and nothing else. Outreach data is kept out
three ways: the conversation is on a buyer number (its kind, set when it was created, is
``buyer``: ``outreach`` and unknown kinds are left out); the other side's number was never
found in an ad; and it never talked with an outreach number nor was a campaign's target."""


def buyer_conversation_ids(conn: sqlite3.Connection, *, since: float | None = None,
                           until: float | None = None,
                           our_numbers: tuple[str, ...] | None = None) -> list[int]:
    """Ids of buyer conversations only, oldest first: what an export to law enforcement may
    contain. Never an outreach (victim) conversation, nor any conversation with a number found
    in an ad or contacted by outreach (see `BUYER_ONLY_SQL`). Optional filters: started at or
    after `since`, before `until` (epoch seconds), on these numbers of ours."""
    clauses, params = [BUYER_ONLY_SQL], []
    if since is not None:
        clauses.append("c.created_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("c.created_at < ?")
        params.append(until)
    if our_numbers is not None:
        clauses.append(f"c.our_number IN ({','.join('?' * len(our_numbers))})"
                       if our_numbers else "0")
        params.extend(our_numbers)
    return [r[0] for r in conn.execute(
        f"SELECT c.id FROM conversations c WHERE {' AND '.join(clauses)} ORDER BY c.id", params)]


def buyer_numbers(conn: sqlite3.Connection) -> list[str]:
    """The numbers of the buyers in `buyer_conversation_ids`, sorted."""
    return [r[0] for r in conn.execute(
        f"SELECT DISTINCT c.their_number FROM conversations c WHERE {BUYER_ONLY_SQL} "
        "ORDER BY 1")]


# -- the advocates' hand-off queue


@dataclass(frozen=True, slots=True)
class QueueRow:
    conversation: ConversationRow
    waiting_since: float | None
    """Since when the person waits for a human; None when a human answered last."""
    unanswered: int
    """Their messages since our last message."""
    last_message_at: float | None
    outcomes: tuple[str, ...]


_QUEUE_SQL = f"""
WITH q AS (
  SELECT c.id AS qid, c.created_at AS created,
    (SELECT max(created_at) FROM outbox o WHERE o.conversation_id = c.id) AS last_out,
    (SELECT count(*) FROM outbox o WHERE o.conversation_id = c.id AND o.kind = 'operator')
      AS human
  FROM conversations c WHERE c.status = 'handed_off' OR c.operator = 1
), w AS (
  SELECT q.*,
    (SELECT min(received_at) FROM inbound i WHERE i.conversation_id = q.qid
      AND i.received_at > coalesce(q.last_out, 0)) AS first_unanswered,
    (SELECT count(*) FROM inbound i WHERE i.conversation_id = q.qid
      AND i.received_at > coalesce(q.last_out, 0)) AS unanswered,
    (SELECT min(received_at) FROM inbound i WHERE i.conversation_id = q.qid) AS first_in,
    (SELECT max(received_at) FROM inbound i WHERE i.conversation_id = q.qid) AS last_in
  FROM q
), r AS (
  SELECT w.*, CASE WHEN human = 0 THEN coalesce(last_out, first_in, created)
                   ELSE first_unanswered END AS waiting
  FROM w
)
SELECT {_CONVERSATION_COLUMNS}, r.waiting, r.unanswered, max(coalesce(r.last_in, 0),
  coalesce(r.last_out, 0)),
  (SELECT group_concat(kind, char(10)) FROM (SELECT kind FROM advocate_outcomes a
    WHERE a.conversation_id = r.qid ORDER BY a.at, a.id))
FROM r JOIN conversations c ON c.id = r.qid
ORDER BY r.waiting IS NULL, r.waiting, c.updated_at, c.id
LIMIT ? OFFSET ?
"""


def queue(conn: sqlite3.Connection, limit: int, offset: int) -> tuple[int, list[QueueRow]]:
    """Conversations with a human (handed off, or taken over), the longest waiting first.

    In a conversation no human has written in yet, the person waits since our last message
    (the bot's hand-off notice). Once a human has written, they wait since their first
    message after our last one, and not at all (None) while nothing came in since: those
    conversations come after every waiting one.
    """
    total = conn.execute("SELECT count(*) FROM conversations WHERE status = 'handed_off' "
                         "OR operator = 1").fetchone()[0]
    rows = []
    for r in conn.execute(_QUEUE_SQL, (limit, offset)):
        w = _CONVERSATION_WIDTH
        rows.append(QueueRow(_conversation(r[:w]), r[w], r[w + 1], r[w + 2] or None,
                             tuple(r[w + 3].split("\n")) if r[w + 3] else ()))
    return total, rows


# -- statistics and the audit log


@dataclass(slots=True)
class StatsRows:
    conversations: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_scenario: list[tuple[str, int, int]] = field(default_factory=list)
    """(scenario, version, conversations)."""
    by_our_number: dict[str, int] = field(default_factory=dict)
    messages_in: int = 0
    messages_out: dict[str, int] = field(default_factory=dict)
    """Outbound messages by status."""
    with_a_human: int = 0
    opted_out: int = 0
    advocate_outcomes: dict[str, int] = field(default_factory=dict)


def stats(conn: sqlite3.Connection) -> StatsRows:
    """Counts over the whole store (scans: keep them off the message path, as here)."""
    s = StatsRows()
    s.by_status = dict(conn.execute("SELECT status, count(*) FROM conversations GROUP BY 1"))
    s.conversations = sum(s.by_status.values())
    s.by_outcome = dict(conn.execute("SELECT outcome, count(*) FROM conversations "
                                     "WHERE outcome IS NOT NULL GROUP BY 1"))
    s.by_scenario = [(name or "", version or 0, n) for name, version, n in conn.execute(
        "SELECT scenario, version, count(*) FROM conversations WHERE scenario IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2")]
    s.by_our_number = dict(conn.execute("SELECT our_number, count(*) FROM conversations "
                                        "GROUP BY 1"))
    s.messages_in = conn.execute("SELECT count(*) FROM inbound").fetchone()[0]
    s.messages_out = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY 1"))
    s.with_a_human = conn.execute("SELECT count(*) FROM conversations WHERE "
                                  "status = 'handed_off' OR operator = 1").fetchone()[0]
    s.opted_out = conn.execute("SELECT count(*) FROM opt_outs WHERE opted_out").fetchone()[0]
    s.advocate_outcomes = dict(conn.execute("SELECT kind, count(*) FROM advocate_outcomes "
                                            "GROUP BY 1"))
    return s


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: float
    actor: str
    role: str
    action: str
    conversation_id: int | None
    status: int
    detail: str


def audit_log(conn: sqlite3.Connection, limit: int, offset: int, *, actor: str | None = None,
              conversation_id: int | None = None) -> tuple[int, list[AuditRow]]:
    """The audit log, newest first."""
    clauses, params = [], []
    if actor is not None:
        clauses.append("actor = ?")
        params.append(actor)
    if conversation_id is not None:
        clauses.append("conversation_id = ?")
        params.append(conversation_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    total = conn.execute(f"SELECT count(*) FROM audit{where}", params).fetchone()[0]
    rows = [AuditRow(r[0], r[1], r[2] or "", r[3] or "", r[4] or "", r[5], r[6] or 0, r[7] or "")
            for r in conn.execute(
                f"SELECT id, at, actor, role, action, conversation_id, status, detail "
                f"FROM audit{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset])]
    return total, rows


def withheld_buyer_count(conn: sqlite3.Connection, number: str | None = None) -> int:
    """Numbers with buyer conversations that the buyer-only gate holds back (they also appear
    in outreach data: ads, campaigns or an outreach conversation); only `number` if given."""
    extra, params = ("AND c.their_number = ?", (number,)) if number else ("", ())
    return int(conn.execute(
        "SELECT count(DISTINCT c.their_number) FROM conversations c WHERE c.kind = 'buyer' "
        f"{extra} AND NOT ({BUYER_ONLY_SQL})", params).fetchone()[0])


def begin_snapshot(conn: sqlite3.Connection) -> None:
    """Open a read transaction on `conn`: what follows reads one snapshot of the store."""
    conn.execute("BEGIN")
