"""Hand-offs in the store: opened by a step, claimed by the first reply, one holder at a time,
released, assigned, noted, closed by a hand-back, read urgent-first; the migration backfills."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from intercept.store import (
    ClaimedByAnother,
    CommitStep,
    HandBack,
    HandoffMade,
    OperatorSend,
    connect,
)
from intercept.store import handoffs as h
from intercept.store.ops import Op, WriterCache
from intercept.store.schema import MIGRATIONS, migrate


class Db:
    """Ops applied straight on a migrated store (autocommit), and reads on the same file."""

    def __init__(self, path: Path):
        self.db = connect(path)
        self.cache = WriterCache()

    def do(self, op: Op) -> Any:
        return op.apply(self.db.conn.cursor(), self.cache)

    def conversation(self, their: str, now: float = 100.0) -> int:
        cur = self.db.conn.execute(
            "INSERT INTO conversations (our_number, their_number, status, created_at, "
            "updated_at) VALUES ('+12065550100', ?, 'active', ?, ?)", (their, now, now))
        return int(cur.lastrowid or 0)

    def hand_off(self, cid: int, priority: str = "normal", now: float = 100.0) -> None:
        self.do(CommitStep(conversation_id=cid, scenario="s", version=1, status="handed_off",
                           outcome=None, state="{}", processed_count=1, timer_at=None,
                           crashes=0, outbox=[], now=now, handoff=HandoffMade(priority, "why")))

    def queue(self, who: str | None = None) -> list[tuple[int, str, str | None]]:
        _, items = h.handoff_queue(self.db.conn, 50, 0, hide_claimed_by_others_of=who)
        return [(i.conversation.id, i.handoff.priority, i.handoff.claimed_by) for i in items]


@pytest.fixture
def db(tmp_path: Path) -> Db:
    return Db(tmp_path / "s.db")


def test_a_step_that_hands_off_opens_one_hand_off_and_urgent_raises_it(db):
    a, b, c = db.conversation("+1"), db.conversation("+2"), db.conversation("+3")
    db.hand_off(a, now=10)
    db.hand_off(b, now=20)
    db.hand_off(c, "urgent", now=30)
    assert db.queue() == [(c, "urgent", None), (a, "normal", None), (b, "normal", None)]
    db.hand_off(b, "urgent", now=40)  # the same hand-off, raised: still one open
    assert db.queue() == [(b, "urgent", None), (c, "urgent", None), (a, "normal", None)]
    db.hand_off(c, "normal", now=50)  # never lowered
    assert db.queue()[1] == (c, "urgent", None)


def test_the_first_reply_claims_and_another_advocate_is_refused(db):
    cid = db.conversation("+1")
    db.hand_off(cid, now=10)
    row = db.do(OperatorSend(cid, "hi, I'm Sam", author="sam", now=20))
    assert row.kind == "operator"
    assert db.do(OperatorSend(cid, "me too", author="kim", now=21)) == ClaimedByAnother("sam")
    assert db.db.execute("SELECT body, sent_by FROM outbox").fetchall() == [("hi, I'm Sam",
                                                                              "sam")]
    found = h.open_handoff(db.db.conn, cid)
    assert (found.claimed_by, found.claimed_at, found.first_reply_at) == ("sam", 20, 20)
    assert db.queue("kim") == [] and db.queue("sam") == [(cid, "normal", "sam")]
    assert db.queue() == [(cid, "normal", "sam")]  # an admin's view


def test_claim_release_assign(db):
    cid = db.conversation("+1")
    assert db.do(h.Claim(cid, "sam", now=1)).refused == "closed"
    assert db.do(h.Claim(999, "sam", now=1)).refused == "missing"
    db.hand_off(cid)
    assert db.do(h.Claim(cid, "sam", now=2)).handoff.claimed_by == "sam"
    assert db.do(h.Claim(cid, "sam", now=3)).handoff.claimed_at == 2  # again: no change
    refused = db.do(h.Claim(cid, "kim", now=4))
    assert (refused.refused, refused.previous) == ("held", "sam")
    assert db.do(h.Release(cid, "kim", now=5)).refused == "held"
    released = db.do(h.Release(cid, "sam", now=6))
    assert released.handoff.claimed_by is None and released.previous == "sam"
    assigned = db.do(h.Assign(cid, "kim", now=7, by="root"))
    assert assigned.handoff.claimed_by == "kim"
    assert db.do(h.Release(cid, "root", now=8, force=True)).handoff.claimed_by is None


def test_notes_and_hand_back_closes(db):
    cid = db.conversation("+1")
    db.hand_off(cid)
    note = db.do(h.AddNote(cid, "  prefers texts after 6pm ", author="sam", now=5))
    assert note.text == "prefers texts after 6pm" and note.handoff_id is not None
    assert db.do(h.AddNote(999, "x", author="sam", now=5)) is None
    with pytest.raises(ValueError, match="the note is empty"):
        h.AddNote(cid, "  ", author="sam", now=5)
    assert db.do(HandBack(cid, now=9))
    assert h.open_handoff(db.db.conn, cid) is None
    assert db.db.execute("SELECT closed_at, outcome FROM handoffs").fetchall() == [
        (9, "handed_back")]
    assert [n.text for n in h.notes(db.db.conn, cid)] == ["prefers texts after 6pm"]
    db.hand_off(cid, now=20)  # handed off again: a new hand-off
    assert db.db.execute("SELECT count(*) FROM handoffs").fetchone()[0] == 2


def test_a_take_over_opens_a_hand_off_held_by_the_advocate(db):
    cid = db.conversation("+1")
    db.do(OperatorSend(cid, "hello", author="sam", now=3))
    found = h.open_handoff(db.db.conn, cid)
    assert (found.source, found.claimed_by, found.first_reply_at) == ("takeover", "sam", 3)


def test_the_snapshot_counts_waits_and_first_replies(db):
    a, b, c = db.conversation("+1"), db.conversation("+2"), db.conversation("+3")
    db.hand_off(a, now=10)
    db.hand_off(b, "urgent", now=20)
    db.do(OperatorSend(c, "taken over", author="sam", now=25))
    db.do(OperatorSend(a, "hi", author="sam", now=40))
    snap = db.do(h.TakeSnapshot(since=0))
    assert snap.open_by_priority == {"normal": 2, "urgent": 1}
    assert snap.oldest_waiting_since == 20  # a is answered
    assert [p for _, p in snap.unalerted] == ["normal", "urgent", "normal"]
    assert snap.first_replies == [(10, 40)]  # a take-over is not a first reply to a wait
    db.do(h.MarkAlerted([i for i, _ in snap.unalerted], now=50))
    assert db.do(h.TakeSnapshot(since=40)) == h.QueueSnapshot(
        {"normal": 2, "urgent": 1}, 20, [], [])


def test_the_migration_backfills_open_hand_offs(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    old = sqlite_utils.Database(conn)
    for migration in MIGRATIONS[:11]:
        migration(old)
    conn.execute("PRAGMA user_version = 11")
    for their, status, operator in (("+1", "handed_off", 0), ("+2", "active", 1),
                                    ("+3", "active", 0)):
        conn.execute("INSERT INTO conversations (our_number, their_number, status, operator, "
                     "created_at, updated_at) VALUES ('+1206', ?, ?, ?, 5, 7)",
                     (their, status, operator))
    assert migrate(old) == len(MIGRATIONS)
    assert conn.execute("SELECT conversation_id, priority, source, opened_at, alerted_at, "
                        "closed_at FROM handoffs ORDER BY 1").fetchall() == [
        (1, "normal", "backfill", 7.0, 7.0, None), (2, "normal", "backfill", 7.0, 7.0, None)]
    assert "sent_by" in old["outbox"].columns_dict


def test_a_purge_deletes_hand_offs_and_notes_with_their_conversation(db):
    from intercept.store.retention import Purge

    cid = db.conversation("+1", now=10)
    db.db.execute("UPDATE conversations SET kind = 'outreach' WHERE id = ?", (cid,))
    db.hand_off(cid, now=10)
    db.do(h.AddNote(cid, "called the shelter", author="sam", now=11))
    result = db.do(Purge("outreach", cutoff=1000, now=2000))
    assert result.conversations == 1
    assert db.db.execute("SELECT (SELECT count(*) FROM handoffs), "
                         "(SELECT count(*) FROM handoff_notes)").fetchone() == (0, 0)


def test_an_admin_may_text_into_a_claimed_hand_off_which_stays_claimed(db):
    cid = db.conversation("+1")
    db.hand_off(cid, now=10)
    db.do(OperatorSend(cid, "hi", author="sam", now=20))
    row = db.do(OperatorSend(cid, "admin here", author="root", now=30, override=True))
    assert row.kind == "operator"
    assert h.open_handoff(db.db.conn, cid).claimed_by == "sam"
    assert db.db.execute("SELECT sent_by FROM outbox ORDER BY position").fetchall() == [
        ("sam",), ("root",)]
