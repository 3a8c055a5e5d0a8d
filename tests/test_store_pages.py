"""Pages a text writes: a step that keeps the status leaves the status index alone, a queued
reply is not in the gateway-id index, the migration swaps the indexes; `loadtest.store_bench`
counts the pages by B-tree."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from intercept.store import CommitStep, MarkOutbox, OutboxRow, connect
from intercept.store.ops import Ingest, WriterCache
from intercept.store.schema import MIGRATIONS, migrate
from loadtest import store_bench


def wal_pages(conn: sqlite3.Connection, ops: list) -> dict[str, int]:
    """Apply `ops` in one transaction; the pages it added to the log, by B-tree."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    store_bench.commit(conn, WriterCache(), ops, store_bench.Timing())
    db_path = conn.execute("PRAGMA database_list").fetchone()[2]
    return dict(store_bench.wal_frames(conn, Path(f"{db_path}-wal")))


def step(cid: int, status: str, *, turn: int, rows: tuple[OutboxRow, ...] = ()) -> CommitStep:
    return CommitStep(conversation_id=cid, scenario="s", version=1, status=status,
                      outcome=None, state="{}", processed_count=turn, timer_at=100.0 + turn,
                      crashes=0, outbox=list(rows), now=10.0 + turn, turn=turn)


@pytest.fixture
def store(tmp_path):
    db = connect(tmp_path / "s.db")
    cur = db.conn.cursor()
    cache = WriterCache()
    for i in range(300):  # enough rows for the indexes to have several pages
        Ingest(gateway="smpp", gateway_id=f"g{i}", our="+1206", their=f"+1425{i:07d}",
               body="hi", received_at=1.0).apply(cur, cache)
        step(i + 1, "active", turn=1).apply(cur, cache)
    yield db
    db.conn.close()


def test_a_step_that_keeps_the_status_writes_no_status_index_page(store):
    pages = wal_pages(store.conn, [step(7, "active", turn=2)])
    assert pages.get("conversations", 0) >= 1
    assert "conversations_status" not in pages
    assert store.conn.execute("SELECT timer_at FROM conversations WHERE id = 7"
                              ).fetchone() == (102.0,)


def test_a_step_that_changes_the_status_records_it(store):
    pages = wal_pages(store.conn, [step(7, "ended", turn=2)])
    assert pages.get("conversations_status", 0) >= 1
    assert store.conn.execute("SELECT status, processed_count FROM conversations "
                              "WHERE id = 7").fetchone() == ("ended", 2)
    assert store.conn.execute("SELECT count(*) FROM conversations WHERE status = 'active'"
                              ).fetchone() == (299,)


def test_a_queued_reply_has_no_gateway_id_entry_until_it_is_sent(store):
    row = OutboxRow(id="7.2.0", conversation_id=7, position=200, our_number="+1206",
                    their_number="+14250000006", body="hey", not_before=20.0)
    queued = wal_pages(store.conn, [step(7, "active", turn=2, rows=(row,))])
    assert "outbox_gateway_id" not in queued
    sent = wal_pages(store.conn, [MarkOutbox([row.id], "sent", now=21.0,
                                             gateway_ids=["00000001"])])
    assert sent.get("outbox_gateway_id", 0) == 1
    plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE gateway_id = ?",
                              ("00000001",)).fetchall()
    assert "outbox_gateway_id" in str(plan)


def test_the_migration_swaps_the_indexes_and_keeps_the_rows(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    old = sqlite_utils.Database(conn)
    for migration in MIGRATIONS[:13]:
        migration(old)
    conn.execute("PRAGMA user_version = 13")
    conn.execute("INSERT INTO conversations (our_number, their_number, status, timer_at) "
                 "VALUES ('+1206', '+1425', 'active', 5)")
    conn.execute("INSERT INTO outbox (id, conversation_id, body, status, gateway_id) "
                 "VALUES ('1.1.0', 1, 'hey', 'sent', 'abc')")
    assert migrate(old) == len(MIGRATIONS) == 14
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert {"conversations_status", "outbox_gateway_id"} <= indexes
    assert not {"idx_conversations_status_timer_at", "idx_outbox_gateway_id"} & indexes
    assert conn.execute("SELECT id FROM outbox WHERE gateway_id = 'abc'").fetchall() == [
        ("1.1.0",)]


def test_the_store_bench_counts_pages_by_b_tree(capsys):
    assert store_bench.main(["--conversations", "300", "--texts", "300", "--sample", "300",
                             "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    by_btree = figures["wal_pages_per_text_by_btree"]
    assert figures["wal_pages_per_text"] == pytest.approx(sum(by_btree.values()), abs=0.2)
    assert {"conversations", "inbound", "outbox", "transitions"} <= set(by_btree)
    assert "conversations_status" not in by_btree  # every step keeps 'active'
    assert figures["writer_cpu_us_per_text"] > 0


def test_the_store_bench_prints_a_summary_and_refuses_an_existing_db(capsys, tmp_path):
    assert store_bench.main(["--conversations", "50", "--texts", "50", "--sample", "50"]) == 0
    out = capsys.readouterr().out
    assert "writer CPU per text" in out and "pages to the write-ahead log per text" in out
    taken = tmp_path / "taken.db"
    taken.write_text("")
    with pytest.raises(SystemExit):
        store_bench.main(["--db", str(taken)])
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        store_bench.main(["--texts", "0"])
    assert "--texts: 0 must be above 0" in capsys.readouterr().err
