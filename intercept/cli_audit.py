"""Audit rows for CLI commands that read or change the store without the server's API.

They go straight into the store's `audit` table (WAL lets them in beside a serving server),
with the actor ``cli:<user>`` and the role ``cli``, like `intercept export`'s.
"""

from __future__ import annotations

import getpass
import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def write_audit(conn: sqlite3.Connection, action: str, detail: str, *, status: int = 200
                ) -> None:
    """One audit row on `conn` (inside the caller's transaction, if any)."""
    conn.execute("INSERT INTO audit (at, actor, role, action, conversation_id, status, detail) "
                 "VALUES (?, ?, 'cli', ?, NULL, ?, ?)",
                 (time.time(), cli_actor(), action, status, detail[:200]))


def audit_cli(db: Path, action: str, detail: str, *, status: int = 200) -> None:
    """Write one audit row into the store `db`, waiting up to 30 s for the server's writer."""
    conn = sqlite3.connect(str(db), timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        with conn:
            write_audit(conn, action, detail, status=status)
    finally:
        conn.close()
