"""The store's id: a random name made with the store (migration 13), kept by its backups.

The server tells it in /healthz, and the command line compares it with the id of the store
its config names before it sends a request (intercept/cli/options.py), so a command never
talks to another server on the same machine without noticing.
"""

from __future__ import annotations

import sqlite3
from sqlite3 import Cursor

from .ops import Op, WriterCache


def read_store_id(conn: sqlite3.Connection | Cursor) -> str | None:
    """The store's id; None in a store no server of this version has opened yet."""
    try:
        row = conn.execute("SELECT id FROM store_identity").fetchone()
    except sqlite3.OperationalError:  # no such table: an older schema
        return None
    return row[0] if row else None


class StoreId(Op):
    """Read the store's id through the writer."""

    __slots__ = ()

    def apply(self, cur: Cursor, cache: WriterCache) -> str | None:
        return read_store_id(cur)
