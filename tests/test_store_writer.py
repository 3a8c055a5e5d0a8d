"""The single writer, unit-tested: many calls coalesce into one commit (group commit), a batch
never grows past `batch_max`, and an op that raises fails alone while the rest of its batch
commits (bad-op isolation)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import trio
import trio.testing

from intercept.foundation.metrics import Metrics
from intercept.store import Op, Store


class Put(Op):
    """Insert `value` into the scratch table; returns it."""

    def __init__(self, value: int):
        self.value = value

    def apply(self, cur: sqlite3.Cursor, cache: Any) -> int:
        cur.execute("INSERT INTO scratch (value) VALUES (?)", (self.value,))
        return self.value


class Broken(Put):
    """Writes its row, then raises: its row must not stay, and it must take no other row."""

    def apply(self, cur: sqlite3.Cursor, cache: Any) -> int:
        super().apply(cur, cache)
        raise ValueError(f"op {self.value} is broken")


def open_store(tmp_path, **options: Any) -> tuple[Store, Metrics]:
    metrics = Metrics()
    store = Store(tmp_path / "writer.db", metrics=metrics, threaded=False, **options)
    store.db.execute("CREATE TABLE scratch (value INTEGER NOT NULL)")
    return store, metrics


def commits(metrics: Metrics) -> tuple[int, int]:
    """(batches committed, ops in them), from the writer's own histogram."""
    registry = metrics.registry
    count = registry.get_sample_value("intercept_store_batch_size_count") or 0
    total = registry.get_sample_value("intercept_store_batch_size_sum") or 0
    return int(count), int(total)


def stored(store: Store) -> list[int]:
    return [value for (value,) in store.query("SELECT value FROM scratch ORDER BY value")]


async def call_all(store: Store, ops: list[Op]) -> dict[int, Any]:
    """Queue every op before the writer runs (so they meet in its queue), then let it run;
    returns each op's result or exception by position."""
    results: dict[int, Any] = {}

    async def one(i: int, op: Op) -> None:
        try:
            results[i] = await store.call(op)
        except Exception as exc:  # the test inspects what each caller was told
            results[i] = exc

    async with trio.open_nursery() as nursery:
        for i, op in enumerate(ops):
            nursery.start_soon(one, i, op)
        await trio.testing.wait_all_tasks_blocked()
        assert not results  # nobody was answered before the writer ran
        await nursery.start(store.run)
        while len(results) < len(ops):
            await trio.testing.wait_all_tasks_blocked()
        store.close()
    return results


async def test_many_calls_coalesce_into_one_commit(tmp_path):
    store, metrics = open_store(tmp_path)
    results = await call_all(store, [Put(i) for i in range(200)])
    assert results == {i: i for i in range(200)}
    assert commits(metrics) == (1, 200)
    assert stored(store) == list(range(200))
    store.shutdown()


async def test_a_batch_never_grows_past_batch_max(tmp_path):
    store, metrics = open_store(tmp_path, batch_max=10)
    await call_all(store, [Put(i) for i in range(25)])
    assert commits(metrics) == (3, 25)  # 10 + 10 + 5
    assert stored(store) == list(range(25))
    store.shutdown()


async def test_an_op_that_raises_fails_alone_and_the_rest_of_its_batch_commits(tmp_path, caplog):
    store, metrics = open_store(tmp_path)
    ops: list[Op] = [Put(1), Put(2), Broken(3), Put(4), Broken(5), Put(6)]
    results = await call_all(store, ops)
    assert [results[i] for i in (0, 1, 3, 5)] == [1, 2, 4, 6]
    for i, value in ((2, 3), (4, 5)):
        assert isinstance(results[i], ValueError)
        assert str(results[i]) == f"op {value} is broken"
    assert stored(store) == [1, 2, 4, 6]  # the broken ops' own rows were rolled back
    assert commits(metrics) == (1, 6)  # one batch, isolated op by op after the failure
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "store: Broken failed", "store: Broken failed"]
    assert store.failing is None  # a bad op is not a store fault
    store.shutdown()


async def test_a_posted_op_that_raises_is_logged_and_takes_no_other_write(tmp_path, caplog):
    store, _ = open_store(tmp_path)
    async with trio.open_nursery() as nursery:
        await store.post(Broken(1))
        await store.post(Put(2))
        nursery.start_soon(store.run)
        assert await store.call(Put(3)) == 3
        store.close()
    assert stored(store) == [2, 3]
    assert "store: Broken failed" in caplog.text
    store.shutdown()


@pytest.mark.parametrize("bad_at", [0, 3, 7])
async def test_isolation_keeps_the_order_of_the_good_ops(tmp_path, bad_at):
    store, _ = open_store(tmp_path)
    ops: list[Op] = [Broken(i) if i == bad_at else Put(i) for i in range(8)]
    results = await call_all(store, ops)
    assert isinstance(results.pop(bad_at), ValueError)
    assert results == {i: i for i in range(8) if i != bad_at}
    assert stored(store) == [i for i in range(8) if i != bad_at]
    store.shutdown()
