"""The API's read pool: its own connections, read-only, usable while the writer commits."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from intercept.store import Audit, Store
from intercept.store.reads import ConversationFilter, Reads, audit_log, list_conversations


async def test_reads_see_commits_and_cannot_write(tmp_path):
    store = Store(tmp_path / "r.db")
    reads = Reads(store.path, size=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.call(Audit(at=1.0, actor="a", role="admin", action="X", status=200))
        total, rows = await reads.run(audit_log, 10, 0)
        assert total == 1 and rows[0].actor == "a"

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM audit")

        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reads.run(write)
        async with trio.open_nursery() as readers:  # more callers than connections: they wait
            for _ in range(6):
                readers.start_soon(reads.run, list_conversations, ConversationFilter(), 10, 0)
        assert len(reads._idle) <= 2
        await store.call(Audit(at=2.0, actor="b", role="admin", action="Y", status=200))
        assert (await reads.run(audit_log, 10, 0))[0] == 2
        store.close()
    reads.close()
    store.shutdown()
    with pytest.raises(RuntimeError, match="closed"):
        await reads.run(audit_log, 10, 0)


def test_an_in_memory_store_cannot_be_shared():
    with pytest.raises(ValueError, match="needs a store file"):
        Reads(":memory:")
