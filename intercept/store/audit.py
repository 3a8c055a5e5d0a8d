"""Audit rows for the commands that read or change the store without the server's API.

The server's own audit rows go through its writer (`ops.Audit`). A command runs in another
process, so it cannot use that writer: it writes its row here, on a short connection of its
own, and SQLite's locking (WAL, a 30 s busy timeout) lets it in beside a serving server, as
`intercept ads import` and `intercept token` write theirs. The role is always ``cli``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .opening import open_connection

BUSY_TIMEOUT_MS = 30_000

T = TypeVar("T")


def insert_audit(conn: sqlite3.Connection, *, actor: str, action: str, detail: str,
                 status: int = 200, at: float | None = None) -> None:
    """One audit row on `conn` (inside the caller's transaction, if any)."""
    conn.execute("INSERT INTO audit (at, actor, role, action, conversation_id, status, detail) "
                 "VALUES (?, ?, 'cli', ?, NULL, ?, ?)",
                 (time.time() if at is None else at, actor, action, status, detail))


def audit_beside_server(db: Path, key: str, *, actor: str, action: str, detail: str,
                        status: int = 200) -> None:
    """Write one audit row into the store `db` (keyed with `key` when encrypted) in its own
    transaction, waiting up to 30 s for the server's writer. Raises `StoreError` or a
    database error when it cannot."""
    conn = open_connection(db, key, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        with conn:
            insert_audit(conn, actor=actor, action=action, detail=detail, status=status)
    finally:
        conn.close()


def audited(conn: sqlite3.Connection, change: Callable[[sqlite3.Connection], T], *, actor: str,
            action: str, detail: str, record: Callable[[T], bool] = lambda _: True) -> T:
    """Run `change(conn)` and, when `record` of its result says so, its audit row, in one
    immediate transaction: both are stored or neither is."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        result = change(conn)
        if record(result):
            insert_audit(conn, actor=actor, action=action, detail=detail)
    return result
