"""The write-ahead log is copied into the database beside the writer (store/checkpoints.py):
the writer's own checkpoints move to a higher threshold, a failed checkpoint is logged once and
tried again; the server runs it when `store.checkpoints = "beside"` and still leaves no log
behind when it stops."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import trio

from intercept.foundation.metrics import Metrics
from intercept.store import Store
from intercept.store.checkpoints import WRITER_PAGES, Checkpointer

from helpers import OUR, Blob, make_config, running

BUYER = "+12065550199"


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def test_the_log_is_copied_beside_the_writer(tmp_path, autojump_clock):
    db = tmp_path / "s.db"
    metrics = Metrics()
    store = Store(db, threaded=False)
    checkpointer = Checkpointer(store, every=1.0, metrics=metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(checkpointer.run)
        assert store.query("PRAGMA wal_autocheckpoint") == [(WRITER_PAGES,)]
        await trio.sleep(1.5)  # the first checkpoint: nothing written yet
        size = db.stat().st_size
        for _ in range(50):
            await store.call(Blob(4000))  # ~50 pages, in the log only
        assert db.stat().st_size == size
        await trio.sleep(1)
        assert db.stat().st_size >= size + 50 * 4000  # copied into the database
        assert sample(metrics, "intercept_store_checkpoint_seconds_count") == 2
        assert sample(metrics, "intercept_store_log_pages") >= 50
        store.close()
        nursery.cancel_scope.cancel()
    store.shutdown()


class FailingConnection:
    def __init__(self, code: int, message: str):
        self.code, self.message = code, message

    def execute(self, sql: str):
        error = sqlite3.OperationalError(self.message)
        error.sqlite_errorcode = self.code
        raise error


async def test_a_failed_checkpoint_is_logged_once_and_tried_again(tmp_path, caplog):
    store = Store(tmp_path / "s.db", threaded=False)
    checkpointer = Checkpointer(store)
    caplog.set_level(logging.INFO, logger="intercept.store.checkpoints")
    full = FailingConnection(13, "database or disk is full")
    await checkpointer.checkpoint(full)
    await checkpointer.checkpoint(full)
    assert checkpointer.failing == "disk full"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "disk full" in warnings[0].getMessage() and str(store.path) in warnings[0].getMessage()
    await checkpointer.checkpoint(FailingConnection(10 | (3 << 8), "disk I/O error"))
    assert checkpointer.failing == "I/O error"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    await checkpointer.checkpoint(store.db.conn)
    assert checkpointer.failing is None
    assert "succeed again (after I/O error)" in caplog.records[-1].getMessage()
    store.shutdown()


async def test_an_in_memory_store_has_no_log_to_copy(autojump_clock):
    store = Store(":memory:", threaded=False)
    checkpointer = Checkpointer(store)
    assert not checkpointer.applies
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(checkpointer.run)  # returns at once
        assert store.query("PRAGMA wal_autocheckpoint") == [(1000,)]
        store.close()
    store.shutdown()


async def test_the_server_checkpoints_beside_its_writer_when_told_and_leaves_no_log(
        tmp_path, autojump_clock):
    config = make_config(store={"checkpoints": "beside"})
    async with running(tmp_path, config) as (server, phones):
        assert server.store.query("PRAGMA wal_autocheckpoint") == [(WRITER_PAGES,)]
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hi",
                                    gateway_id="c1")
        await phones.wait_for(1)
        await trio.sleep(2)
        assert sample(server.metrics, "intercept_store_checkpoint_seconds_count") >= 1
    assert not Path(f"{tmp_path / 'test.db'}-wal").exists()


async def test_by_default_the_writer_checkpoints_in_its_commits(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        assert server.checkpointer is None
        assert server.store.query("PRAGMA wal_autocheckpoint") == [(1000,)]
