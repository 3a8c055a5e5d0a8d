"""Write operations run by the single writer, many to a transaction.

Each op's `apply(cursor)` runs in the writer thread inside the batch's transaction and returns
the op's result. Ops are plain objects: building one does no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from sqlite3 import Cursor
from typing import Any

import msgspec

from ..foundation.caching import BoundedDict
from .handoff_rows import claim_for_reply, close_handoff, open_handoff
from .schema import RANK_SQL, STATUS_RANK
from .tombstones import is_tombstoned


class WriterCache:
    """What the writer thread remembers between batches (it is the only writer, so it is exact)."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self.conversations: BoundedDict[tuple[str, str], tuple[int, int]] = BoundedDict(size)
        """(our, their) -> (conversation id, inbound count). Tuples, not lists: the collector
        stops tracking a tuple of ints, and there is one per recent conversation (~310 bytes:
        100,000 of them, the live conversations the server is sized for, are ~30 MB; a miss
        costs one indexed SELECT in the writer thread)."""
        self.early_receipts: int | None = None
        """How many receipts wait for their submit's gateway id (None: not counted yet)."""
        self.tombstones: bool | None = None
        """Whether any purged message left a tombstone (None: not looked yet)."""

    def forget(self) -> None:
        self.conversations.clear()
        self.early_receipts = None
        self.tombstones = None

    def has_tombstones(self, cur: Cursor) -> bool:
        if self.tombstones is None:
            self.tombstones = cur.execute("SELECT 1 FROM tombstones LIMIT 1").fetchone() is not None
        return self.tombstones

    def has_early_receipts(self, cur: Cursor) -> bool:
        if self.early_receipts is None:
            self.early_receipts = cur.execute("SELECT count(*) FROM early_receipts").fetchone()[0]
        return self.early_receipts > 0


class Op:
    """Base class. Subclasses set fields and implement `apply`."""

    __slots__ = ("_done", "_failure", "_refusable", "_result")

    def apply(self, cur: Cursor, cache: WriterCache) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Ingested:
    conversation_id: int
    conv_seq: int
    duplicate: bool
    replay: bool = False
    """A message purged by retention and delivered again (conversation_id and conv_seq 0)."""


class Ingest(Op):
    """Record an inbound message; find or create its conversation. Idempotent by gateway id."""

    __slots__ = ("body", "gateway", "gateway_id", "media", "our", "received_at", "their")

    def __init__(self, *, gateway: str, gateway_id: str, our: str, their: str, body: str,
                 media: tuple[str, ...] = (), received_at: float):
        self.gateway, self.gateway_id, self.our, self.their = gateway, gateway_id, our, their
        self.body, self.media, self.received_at = body, media, received_at

    def apply(self, cur: Cursor, cache: WriterCache) -> Ingested:
        if cache.has_tombstones(cur) and is_tombstoned(cur, self.gateway, self.gateway_id):
            # purged by retention, then delivered again
            return Ingested(0, 0, duplicate=True, replay=True)
        key = (self.our, self.their)
        entry = cache.conversations.get(key)
        if entry is None:
            row = cur.execute("SELECT id, inbound_count FROM conversations WHERE our_number = ? "
                              "AND their_number = ?", key).fetchone()
            if row is None:
                cur.execute("INSERT INTO conversations (our_number, their_number, status, "
                            "created_at, updated_at) VALUES (?, ?, 'new', ?, ?)",
                            (*key, self.received_at, self.received_at))
                row = (cur.lastrowid, 0)
            entry = (row[0], row[1])
            cache.conversations[key] = entry
        else:
            cache.conversations.touch(key)
        conv_id, count = entry
        media = json.dumps(list(self.media)) if self.media else None
        inserted = cur.execute(
            "INSERT INTO inbound (conversation_id, conv_seq, gateway, gateway_id, our_number, "
            "their_number, body, media, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING seq",
            (conv_id, count + 1, self.gateway, self.gateway_id, self.our, self.their,
             self.body, media, self.received_at)).fetchone()
        if inserted is None:
            prior = cur.execute("SELECT conversation_id, conv_seq FROM inbound WHERE gateway = ? "
                                "AND gateway_id = ?", (self.gateway, self.gateway_id)).fetchone()
            return Ingested(prior[0], prior[1], duplicate=True)
        cache.conversations[key] = (conv_id, count + 1)
        cur.execute("UPDATE conversations SET inbound_count = ?, updated_at = ? WHERE id = ?",
                    (count + 1, self.received_at, conv_id))
        if self.media:  # fetched later by the media fetcher (intercept/buyers/media.py)
            cur.executemany(
                "INSERT INTO media (conversation_id, inbound_seq, position, url, status, "
                "attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                [(conv_id, inserted[0], i, url, self.received_at, self.received_at)
                 for i, url in enumerate(self.media)])
        return Ingested(conv_id, count + 1, duplicate=False)


_OUTBOX_COLUMNS = ("id, conversation_id, position, our_number, their_number, body, not_before, "
                   "kind")


class IngestMany(Op):
    """Several inbound messages in one operation (a burst from one socket read)."""

    __slots__ = ("items",)

    def __init__(self, items: list[Ingest]):
        self.items = items

    def apply(self, cur: Cursor, cache: WriterCache) -> list[Ingested]:
        return [item.apply(cur, cache) for item in self.items]


@dataclass(slots=True)
class OutboxRow:
    id: str
    conversation_id: int
    position: int
    our_number: str
    their_number: str
    body: str
    not_before: float
    kind: str = "reply"
    """reply | confirmation (an opt-out/opt-in confirmation, allowed after an opt-out)."""


class FunnelMove(msgspec.Struct, frozen=True):
    """One move between scenario states, as the funnel records it (the `transitions` table)."""

    turn: int
    source: str
    """The state left ("" for the start)."""
    target: str
    trigger: str
    """What moved it: an intent's name, "timeout", "otherwise", "start"..."""


class HandoffMade(msgspec.Struct, frozen=True):
    """A hand-off a step made: opened, or raised to urgent (never lowered)."""

    priority: str
    """urgent | normal."""
    reason: str


class CommitStep(Op):
    """A conversation's new state and everything the step produced, in one transaction:
    replies, tags, funnel transitions, an opt-out change, a pending lookup and a hand-off."""

    __slots__ = ("clear_resume", "conversation_id", "crashes", "handoff", "now", "opt_out",
                 "outbox", "outcome",
                 "pending_lookup", "processed_count", "scenario", "state", "status", "tags",
                 "their_number", "timer_at", "transitions", "turn", "version")

    def __init__(self, *, conversation_id: int, scenario: str, version: int, status: str,
                 outcome: str | None, state: str, processed_count: int, timer_at: float | None,
                 crashes: int, outbox: list[OutboxRow], now: float, turn: int = 0,
                 tags: list[str] | None = None,
                 transitions: list[FunnelMove] | tuple[FunnelMove, ...] | None = None,
                 opt_out: bool | None = None, their_number: str = "",
                 pending_lookup: str | None = None, clear_resume: bool = False,
                 handoff: HandoffMade | None = None):
        self.handoff = handoff
        """A hand-off this step made."""
        self.conversation_id, self.scenario, self.version = conversation_id, scenario, version
        self.status, self.outcome, self.state = status, outcome, state
        self.processed_count, self.timer_at, self.crashes = processed_count, timer_at, crashes
        self.outbox, self.now, self.turn = outbox, now, turn
        self.tags, self.transitions = tags, transitions
        self.opt_out, self.their_number = opt_out, their_number
        self.pending_lookup = pending_lookup
        self.clear_resume = clear_resume

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        now, conversation_id = self.now, self.conversation_id
        cur.execute(
            "UPDATE conversations SET scenario = ?, version = ?, outcome = ?, "
            "state = ?, processed_count = ?, timer_at = ?, crashes = ?, pending_lookup = ?, "
            "updated_at = ? WHERE id = ?",
            (self.scenario, self.version, self.outcome, self.state,
             self.processed_count, self.timer_at, self.crashes, self.pending_lookup, now,
             conversation_id))
        # apart, and only when it changes: setting a column rewrites its index entries even
        # to the same value, and most steps leave the status as it was
        cur.execute("UPDATE conversations SET status = ? WHERE id = ? AND status IS NOT ?",
                    (self.status, conversation_id, self.status))
        if self.clear_resume:
            cur.execute("UPDATE conversations SET resume = 0 WHERE id = ?", (conversation_id,))
        if self.outbox:
            cur.executemany(
                "INSERT OR IGNORE INTO outbox (id, conversation_id, position, our_number, "
                "their_number, body, not_before, status, kind, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                [(r.id, r.conversation_id, r.position, r.our_number, r.their_number, r.body,
                  r.not_before, r.kind, now, now) for r in self.outbox])
        if self.tags:
            cur.executemany("INSERT OR IGNORE INTO tags (conversation_id, name, created_at) "
                            "VALUES (?, ?, ?)", [(conversation_id, t, now) for t in self.tags])
        if self.transitions:
            cur.executemany(
                "INSERT INTO transitions (conversation_id, scenario, version, turn, source, "
                "target, trigger, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(conversation_id, self.scenario, self.version, t.turn, t.source, t.target,
                  t.trigger, now) for t in self.transitions])
        if self.opt_out is not None:
            cur.execute(
                "INSERT INTO opt_outs (number, opted_out, updated_at, conversation_id) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET "
                "opted_out = excluded.opted_out, updated_at = excluded.updated_at, "
                "conversation_id = excluded.conversation_id",
                (self.their_number, int(self.opt_out), now, conversation_id))
        if self.handoff is not None:
            open_handoff(cur, conversation_id, priority=self.handoff.priority,
                         reason=self.handoff.reason, now=now)


class SetConversationStatus(Op):
    """Park a conversation (or record its crash count) without touching its state."""

    __slots__ = ("conversation_id", "crashes", "now", "status")

    def __init__(self, *, conversation_id: int, status: str, crashes: int, now: float):
        self.conversation_id, self.status, self.crashes, self.now = (
            conversation_id, status, crashes, now)

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.execute("UPDATE conversations SET status = ?, crashes = ?, updated_at = ? "
                    "WHERE id = ?", (self.status, self.crashes, self.now, self.conversation_id))


@dataclass(slots=True)
class Loaded:
    """A conversation as committed, and its inbound messages not yet processed."""

    id: int
    our_number: str
    their_number: str
    status: str
    state: str | None
    processed_count: int
    crashes: int
    pending_lookup: str | None = None
    operator: bool = False
    """A human has taken the conversation over: the bot does not step."""
    resume: bool = False
    """Handed back to the bot, not yet acted on."""
    last_not_before: float = 0.0
    pending: list[tuple[int, str, tuple[str, ...], float]] = field(default_factory=list)
    """Unprocessed inbound messages: (conv_seq, text, media, received_at)."""


class Load(Op):
    """Read a conversation through the writer, so it sees every earlier write."""

    __slots__ = ("conversation_id",)

    def __init__(self, conversation_id: int):
        self.conversation_id = conversation_id

    def apply(self, cur: Cursor, cache: WriterCache) -> Loaded | None:
        row = cur.execute("SELECT id, our_number, their_number, status, state, processed_count, "
                          "crashes, pending_lookup, operator, resume FROM conversations "
                          "WHERE id = ?", (self.conversation_id,)).fetchone()
        if row is None:
            return None
        loaded = Loaded(*row[:8], operator=bool(row[8]), resume=bool(row[9]))
        loaded.last_not_before = cur.execute(
            "SELECT coalesce(max(not_before), 0) FROM outbox WHERE conversation_id = ? "
            "AND status IN ('queued', 'sending')", (row[0],)).fetchone()[0]
        loaded.pending = [
            (conv_seq, body or "", tuple(json.loads(media)) if media else (), received_at)
            for conv_seq, body, media, received_at in cur.execute(
                "SELECT conv_seq, body, media, received_at FROM inbound WHERE "
                "conversation_id = ? AND conv_seq > ? ORDER BY conv_seq", (row[0], row[5]))]
        return loaded


class MarkOutbox(Op):
    """Advance outbox rows to `status` (never backwards), with gateway ids where known."""

    __slots__ = ("error", "gateway_ids", "ids", "now", "status")

    def __init__(self, ids: list[str], status: str, *, now: float,
                 gateway_ids: list[str | None] | None = None, error: str | None = None):
        self.ids, self.status, self.now, self.gateway_ids, self.error = (
            ids, status, now, gateway_ids, error)

    def apply(self, cur: Cursor, cache: WriterCache) -> int:
        rank = STATUS_RANK[self.status]
        sent_at = self.now if self.status == "sent" else None
        gateway_ids = self.gateway_ids or [None] * len(self.ids)
        cur.executemany(
            f"UPDATE outbox SET status = ?, gateway_id = coalesce(?, gateway_id), "
            f"error = coalesce(?, error), sent_at = coalesce(sent_at, ?), updated_at = ? "
            f"WHERE id = ? AND {RANK_SQL} < ?",
            [(self.status, gid, self.error, sent_at, self.now, oid, rank)
             for oid, gid in zip(self.ids, gateway_ids, strict=True)])
        changed = cur.rowcount
        if self.gateway_ids and cache.has_early_receipts(cur):
            known = [g for g in self.gateway_ids if g is not None]
            marks = ",".join("?" * len(known))
            early = cur.execute(f"SELECT gateway_id, status, error FROM early_receipts WHERE "
                                f"gateway_id IN ({marks})", known).fetchall()
            if early:
                _apply_receipts(cur, early, self.now)
                cur.execute(f"DELETE FROM early_receipts WHERE gateway_id IN ({marks})", known)
                cache.early_receipts -= len(early)
        return changed


class Receipt(Op):
    """Delivery receipts (gateway id, status, error), matched by the gateway's message id.

    A status never moves back: a late 'sent' does not overwrite 'delivered'. Receipts in
    `by_outbox` (outbox id, gateway id, status, error) name our row themselves (an HTTP
    provider's status callback carries it): they also settle a row whose submit outcome was
    lost ('sending' or 'unknown') and record its gateway id.
    """

    __slots__ = ("by_outbox", "now", "receipts")

    def __init__(self, receipts: list[tuple[str, str, str | None]], *, now: float,
                 by_outbox: list[tuple[str, str, str, str | None]] | None = None):
        self.receipts, self.now, self.by_outbox = receipts, now, by_outbox

    def apply(self, cur: Cursor, cache: WriterCache) -> int:
        changed = 0
        if self.by_outbox:
            now = self.now
            cur.executemany(
                f"UPDATE outbox SET status = ?, gateway_id = coalesce(gateway_id, ?), "
                f"error = coalesce(?, error), sent_at = coalesce(sent_at, ?), updated_at = ? "
                f"WHERE id = ? AND {RANK_SQL} < ?",
                [(status, gateway_id, error, now, now, outbox_id, STATUS_RANK[status])
                 for outbox_id, gateway_id, status, error in self.by_outbox])
            changed += cur.rowcount
        if not self.receipts:
            return changed
        changed += _apply_receipts(cur, self.receipts, self.now)
        if changed < len(self.receipts):
            # A receipt can beat the record of the submit it answers: keep it for MarkOutbox.
            ids = [r[0] for r in self.receipts]
            marks = ",".join("?" * len(ids))
            known = {r[0] for r in cur.execute(
                f"SELECT gateway_id FROM outbox WHERE gateway_id IN ({marks})", ids)}
            early = [(g, s, e, self.now) for g, s, e in self.receipts if g not in known]
            if early:
                cur.executemany("INSERT OR REPLACE INTO early_receipts (gateway_id, status, "
                                "error, at) VALUES (?, ?, ?, ?)", early)
                cache.early_receipts = (cache.early_receipts or 0) + len(early)
        return changed


def _apply_receipts(cur: Cursor, receipts: list[tuple[str, str, str | None]], now: float
                    ) -> int:
    cur.executemany(
        f"UPDATE outbox SET status = ?, error = coalesce(?, error), updated_at = ? "
        f"WHERE gateway_id = ? AND {RANK_SQL} < ?",
        [(status, error, now, gateway_id, STATUS_RANK[status])
         for gateway_id, status, error in receipts])
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a restart must pick up: see the durability contract in docs/architecture.md."""

    sending: list[tuple[OutboxRow, float]]
    """Rows caught between 'sending' and an outcome, with the time they were marked."""
    queued: list[OutboxRow]
    wake: list[int]
    timers: list[tuple[int, float]]
    opted_out: list[str]


class Recover(Op):
    """Read everything unfinished, through the writer."""

    __slots__ = ()

    def apply(self, cur: Cursor, cache: WriterCache) -> Recovery:
        sending = [(OutboxRow(*r[:-1]), r[-1]) for r in cur.execute(
            f"SELECT {_OUTBOX_COLUMNS}, updated_at FROM outbox WHERE status = 'sending' "
            "ORDER BY not_before, position")]
        queued = [OutboxRow(*r) for r in cur.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' "
            "ORDER BY not_before, position")]
        wake = [r[0] for r in cur.execute(
            "SELECT id FROM conversations WHERE (status IN ('new', 'active', 'handed_off') "
            "AND inbound_count > processed_count) OR pending_lookup IS NOT NULL")]
        timers = [(r[0], r[1]) for r in cur.execute(
            "SELECT id, timer_at FROM conversations WHERE status IN ('active', 'handed_off') "
            "AND timer_at IS NOT NULL")]
        opted_out = [r[0] for r in cur.execute("SELECT number FROM opt_outs WHERE opted_out")]
        return Recovery(sending, queued, wake, timers, opted_out)


class SetOptOut(Op):
    """A number opted out (or back in) outside a conversation step, e.g. at the carrier."""

    __slots__ = ("now", "number", "opted_out")

    def __init__(self, number: str, opted_out: bool, *, now: float):
        self.number, self.opted_out, self.now = number, opted_out, now

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        """True if this changed the number's recorded choice."""
        row = cur.execute("SELECT opted_out FROM opt_outs WHERE number = ?",
                          (self.number,)).fetchone()
        if row is not None and bool(row[0]) == self.opted_out:
            return False
        cur.execute(
            "INSERT INTO opt_outs (number, opted_out, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (number) DO UPDATE SET opted_out = excluded.opted_out, "
            "updated_at = excluded.updated_at", (self.number, int(self.opted_out), self.now))
        return True


class Requeue(Op):
    """Put rows whose submit never happened back in the queue (after reconciliation)."""

    __slots__ = ("ids", "now")

    def __init__(self, ids: list[str], *, now: float):
        self.ids, self.now = ids, now

    def apply(self, cur: Cursor, cache: WriterCache) -> list[OutboxRow]:
        cur.executemany("UPDATE outbox SET status = 'queued', updated_at = ? WHERE id = ? "
                        "AND status = 'sending'", [(self.now, i) for i in self.ids])
        marks = ",".join("?" * len(self.ids))
        return [OutboxRow(*r) for r in cur.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' AND id IN ({marks})",
            self.ids)]


@dataclass(frozen=True, slots=True)
class ProgressInfo:
    status: str
    inbound_count: int
    processed_count: int
    unsent: int


class Progress(Op):
    """How far a conversation has got: processed inbound and replies not yet sent."""

    __slots__ = ("conversation_id",)

    def __init__(self, conversation_id: int):
        self.conversation_id = conversation_id

    def apply(self, cur: Cursor, cache: WriterCache) -> ProgressInfo | None:
        row = cur.execute("SELECT status, inbound_count, processed_count FROM conversations "
                          "WHERE id = ?", (self.conversation_id,)).fetchone()
        if row is None:
            return None
        unsent = cur.execute("SELECT count(*) FROM outbox WHERE conversation_id = ? AND status "
                             "IN ('queued', 'sending')", (self.conversation_id,)).fetchone()[0]
        return ProgressInfo(row[0], row[1], row[2], unsent)


@dataclass(frozen=True, slots=True)
class ClaimedByAnother:
    """`OperatorSend` refused: another advocate holds the conversation's hand-off."""

    advocate: str


class OperatorSend(Op):
    """A human takes the conversation over (the bot falls silent) and texts `text`.

    The message claims the conversation's open hand-off for `author` (or opens one they
    hold); when another advocate holds it, nothing is written and `ClaimedByAnother` returned,
    unless `override` (an admin: the hand-off stays with its holder).
    """

    __slots__ = ("author", "conversation_id", "now", "override", "text")

    def __init__(self, conversation_id: int, text: str, *, author: str, now: float,
                 override: bool = False):
        self.conversation_id, self.text, self.author, self.now = (
            conversation_id, text, author, now)
        self.override = override

    def apply(self, cur: Cursor, cache: WriterCache) -> OutboxRow | ClaimedByAnother | None:
        row = cur.execute("SELECT our_number, their_number FROM conversations WHERE id = ?",
                          (self.conversation_id,)).fetchone()
        if row is None:
            return None
        holder = claim_for_reply(cur, self.conversation_id, self.author, self.now,
                                 override=self.override)
        if holder is not None:
            return ClaimedByAnother(holder)
        cur.execute("UPDATE conversations SET operator = 1, resume = 0, updated_at = ? "
                    "WHERE id = ?", (self.now, self.conversation_id))
        position, count = cur.execute(
            "SELECT coalesce(max(position), 0) + 1, (SELECT count(*) FROM outbox WHERE "
            "conversation_id = ? AND kind = 'operator') FROM outbox WHERE conversation_id = ?",
            (self.conversation_id, self.conversation_id)).fetchone()
        outbox = OutboxRow(id=f"{self.conversation_id}.op.{count + 1}",
                           conversation_id=self.conversation_id, position=position,
                           our_number=row[0], their_number=row[1], body=self.text,
                           not_before=self.now, kind="operator")
        cur.execute(
            "INSERT INTO outbox (id, conversation_id, position, our_number, their_number, body, "
            "not_before, status, kind, created_at, updated_at, sent_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 'operator', ?, ?, ?)",
            (outbox.id, outbox.conversation_id, outbox.position, outbox.our_number,
             outbox.their_number, outbox.body, outbox.not_before, self.now, self.now,
             self.author))
        return outbox


class HandBack(Op):
    """The human gives the conversation back to the bot (its open hand-off closes)."""

    __slots__ = ("conversation_id", "now")

    def __init__(self, conversation_id: int, *, now: float):
        self.conversation_id, self.now = conversation_id, now

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        cur.execute("UPDATE conversations SET operator = 0, resume = 1, updated_at = ? "
                    "WHERE id = ?", (self.now, self.conversation_id))
        if cur.rowcount == 0:
            return False
        close_handoff(cur, self.conversation_id, outcome="handed_back", now=self.now)
        return True


class Audit(Op):
    """One line of the admin API's audit log."""

    __slots__ = ("action", "actor", "at", "conversation_id", "detail", "role", "status")

    def __init__(self, *, at: float, actor: str, role: str, action: str, status: int,
                 conversation_id: int | None = None, detail: str = ""):
        self.at, self.actor, self.role, self.action = at, actor, role, action
        self.status, self.conversation_id, self.detail = status, conversation_id, detail

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.execute("INSERT INTO audit (at, actor, role, action, conversation_id, status, "
                    "detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.at, self.actor, self.role, self.action, self.conversation_id,
                     self.status, self.detail))
