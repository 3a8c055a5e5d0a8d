"""Tombstones: what is left of a purged inbound message, so a replay of it is refused.

Retention deletes inbound rows, and with them the unique (gateway, gateway_id) that makes a
redelivery a duplicate. A gateway that delivers such a message again (a Twilio webhook replayed,
an SMSC resending a deliver_sm) would otherwise start a new conversation and be answered. The
purge therefore keeps, for ``retention.replay_guard``, the SHA-256 of each purged message's
gateway and id — not the id itself, nor any number or text — and `Ingest` drops a message whose
digest is there as a duplicate. Tombstones older than that are deleted by the next purge.
"""

from __future__ import annotations

import hashlib
from sqlite3 import Cursor


def digest(gateway: str, gateway_id: str) -> str:
    """The tombstone of one message: SHA-256 of its gateway and id, in hex."""
    return hashlib.sha256(f"{gateway}\0{gateway_id}".encode()).hexdigest()


def is_tombstoned(cur: Cursor, gateway: str, gateway_id: str) -> bool:
    return cur.execute("SELECT 1 FROM tombstones WHERE digest = ?",
                       (digest(gateway, gateway_id),)).fetchone() is not None


def bury(cur: Cursor, ids_sql: str, now: float) -> int:
    """Write the tombstones of the inbound messages of the conversations in `ids_sql` (a
    sub-select of conversation ids); return how many."""
    rows = [(digest(gateway, gateway_id), now) for gateway, gateway_id in cur.execute(
        f"SELECT gateway, gateway_id FROM inbound WHERE conversation_id IN {ids_sql}")]
    cur.executemany("INSERT OR REPLACE INTO tombstones (digest, purged_at) VALUES (?, ?)", rows)
    return len(rows)


def expire(cur: Cursor, before: float) -> int:
    """Delete the tombstones written before `before`; return how many."""
    return cur.execute("DELETE FROM tombstones WHERE purged_at < ?", (before,)).rowcount
