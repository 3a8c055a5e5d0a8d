"""The single writer: one task that commits many operations per SQLite transaction.

Callers `await store.call(op)`; the op joins the writer's bounded queue and the call returns once
the transaction holding it has committed. While one batch commits in a worker thread, the next
one gathers in the queue, so the commit rate follows the load (group commit).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, TypeVar

import outcome
import sqlite_utils
import trio

from .opening import DB_ERRORS, StoreError, open_connection
from .ops import Op, WriterCache
from .schema import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreClosed(RuntimeError):
    """The store is shutting down and takes no more writes."""


__all__ = ["Store", "StoreClosed", "StoreError", "connect"]

ENCRYPTED_CACHE_KIB = 65_536
"""The writer's page cache with SQLCipher (SQLite's default is 2 MiB; docs/performance.md)."""


def connect(path: str | Path, *, synchronous: str = "normal", key: str = ""
            ) -> sqlite_utils.Database:
    """Open (creating if needed, mode 0600) and migrate the database at `path`; `key` opens it
    with SQLCipher (see `opening`).

    Raises `StoreError` naming the file when it cannot be opened or is not an Intercept store.
    """
    try:
        conn = open_connection(path, key, create=True, check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        if key:  # a page SQLite must fetch again is decrypted and authenticated again
            conn.execute(f"PRAGMA cache_size = -{ENCRYPTED_CACHE_KIB}")
        db = sqlite_utils.Database(conn)
        migrate(db)
    except (OSError, *DB_ERRORS) as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    return db


class Store:
    """Owns the write connection. Run `run()` in a nursery, then `call()` ops from any task."""

    def __init__(self, path: str | Path, *, synchronous: str = "normal", batch_max: int = 4000,
                 queue_size: int = 20_000, metrics: Any = None, threaded: bool = True,
                 key: str = ""):
        self.path = str(path)
        self.key = key
        """The SQLCipher key ('' for a plain store): readers and backups open it with this."""
        self.db = connect(path, synchronous=synchronous, key=key)
        self.batch_max = batch_max
        self.metrics = metrics
        self._send, self._receive = trio.open_memory_channel[Op](queue_size)
        self._cache = WriterCache()
        self._closed = False
        self.threaded = threaded
        """Commit in a worker thread (the default). False commits on the trio thread, which
        blocks it; tests use it so that MockClock time does not jump during a commit."""

    async def call(self, op: Op) -> Any:
        """Queue `op`, wait until its transaction commits, return its result.

        Once queued, the op will be committed: a cancellation that arrives meanwhile takes
        effect when the commit is done, so the caller always learns the outcome.
        """
        op._done = trio.lowlevel.current_task()
        await self._enqueue(op)
        result: Any = await trio.lowlevel.wait_task_rescheduled(_not_abortable)
        return result

    async def post(self, op: Op) -> None:
        """Queue `op` without waiting for its commit (a failure is logged, not raised)."""
        op._done = None
        await self._enqueue(op)

    async def _enqueue(self, op: Op) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")
        try:
            self._send.send_nowait(op)  # the common case: no task switch
        except trio.WouldBlock:
            await self._send.send(op)  # the queue is full: wait (backpressure)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The writer loop. Ends (after a last flush) when `close()` is called, and only then.

        It is shielded from cancellation: tasks waiting in `call()` cannot be cancelled (they
        must learn whether their write committed), so the writer serves them until the owner
        closes the store, which `Server.run` always does on its way out.
        """
        task_status.started()
        receive = self._receive
        reschedule = trio.lowlevel.reschedule
        with trio.CancelScope(shield=True):
            while True:
                try:
                    first = await receive.receive()
                except trio.EndOfChannel:
                    break
                batch = [first]
                while len(batch) < self.batch_max:
                    try:
                        batch.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if self.threaded:
                    await trio.to_thread.run_sync(self._commit, batch)
                else:
                    self._commit(batch)
                    await trio.lowlevel.checkpoint()
                for op in batch:
                    if op._done is not None:
                        failure = op._failure
                        reschedule(op._done, outcome.Value(op._result) if failure is None
                                   else outcome.Error(failure))

    def close(self) -> None:
        """Stop taking ops; `run()` commits what is queued, then returns."""
        self._closed = True
        self._send.close()

    def _commit(self, batch: list[Op]) -> None:
        started = time.perf_counter()
        conn = self.db.conn
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            for op in batch:
                op._failure = None
                op._result = op.apply(cur, self._cache)
            cur.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                cur.execute("ROLLBACK")
            self._cache.forget()
            for op in batch:  # isolate the bad op: commit each one on its own
                self._commit_one(op, cur)
        if self.metrics is not None:
            self.metrics.store_commit_seconds.observe(time.perf_counter() - started)
            self.metrics.store_batch_size.observe(len(batch))

    def _commit_one(self, op: Op, cur: sqlite3.Cursor) -> None:
        try:
            cur.execute("BEGIN IMMEDIATE")
            op._failure = None
            op._result = op.apply(cur, self._cache)
            cur.execute("COMMIT")
        except Exception as exc:
            if self.db.conn.in_transaction:
                cur.execute("ROLLBACK")
            self._cache.forget()
            log.exception("store: %s failed", type(op).__name__)
            if op._done is None:  # posted: nobody waits for it
                return
            op._failure = exc
            op._result = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A synchronous read on the writer's connection (start-up and tests only)."""
        return self.db.execute(sql, params).fetchall()

    def shutdown(self) -> None:
        self.db.conn.close()


def _not_abortable(raise_cancel: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED
