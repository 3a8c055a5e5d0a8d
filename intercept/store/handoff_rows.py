"""The `handoffs` rows that other writes keep in step (plain SQL on the writer's cursor).

A conversation has at most one open hand-off (``closed_at IS NULL``). The scenario opens one
(`CommitStep`), an advocate's first message claims it or opens one already claimed
(`OperatorSend`), handing the conversation back closes it (`HandBack`). The advocates' own
operations (claim, release, assign, notes) are in `handoffs.py`.
"""

from __future__ import annotations

from sqlite3 import Cursor
from typing import Final

PRIORITIES: Final = ("normal", "urgent")
"""A hand-off's priority, as a scenario's `handoff.priority` gives it."""


def open_handoff(cur: Cursor, conversation_id: int, *, priority: str, reason: str,
                 now: float) -> None:
    """Open a hand-off for the conversation, or raise the open one to `priority` (an urgent
    one is alerted again)."""
    row = cur.execute("SELECT id, priority FROM handoffs WHERE conversation_id = ? AND "
                      "closed_at IS NULL", (conversation_id,)).fetchone()
    if row is None:
        cur.execute("INSERT INTO handoffs (conversation_id, priority, reason, source, "
                    "opened_at) VALUES (?, ?, ?, 'scenario', ?)",
                    (conversation_id, priority, reason, now))
    elif priority == "urgent" and row[1] != "urgent":
        cur.execute("UPDATE handoffs SET priority = 'urgent', reason = ?, alerted_at = NULL "
                    "WHERE id = ?", (reason, row[0]))


def claim_for_reply(cur: Cursor, conversation_id: int, author: str, now: float, *,
                    override: bool = False) -> str | None:
    """Before `author` texts into the conversation: None when they may (claiming the open
    hand-off, or opening one claimed by them when there is none), else who holds it. With
    `override` (an admin) they may text into one another advocate holds, which stays theirs."""
    row = cur.execute("SELECT id, claimed_by FROM handoffs WHERE "
                      "conversation_id = ? AND closed_at IS NULL", (conversation_id,)).fetchone()
    if row is None:
        cur.execute("INSERT INTO handoffs (conversation_id, priority, reason, source, "
                    "opened_at, claimed_by, claimed_at, first_reply_at) "
                    "VALUES (?, 'normal', 'taken over', 'takeover', ?, ?, ?, ?)",
                    (conversation_id, now, author, now, now))
        return None
    handoff_id, claimed_by = row
    if claimed_by is not None and claimed_by != author:
        if not override:
            return str(claimed_by)
        author = claimed_by
    cur.execute("UPDATE handoffs SET claimed_by = ?, claimed_at = coalesce(claimed_at, ?), "
                "first_reply_at = coalesce(first_reply_at, ?) WHERE id = ?",
                (author, now, now, handoff_id))
    return None


def close_handoff(cur: Cursor, conversation_id: int, *, outcome: str, now: float) -> None:
    """Close the conversation's open hand-off, if any."""
    cur.execute("UPDATE handoffs SET closed_at = ?, outcome = ? WHERE conversation_id = ? "
                "AND closed_at IS NULL", (now, outcome, conversation_id))
