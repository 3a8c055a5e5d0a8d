"""The single writer: one task that commits many operations per SQLite transaction.

Callers `await store.call(op)`; the op joins the writer's bounded queue and the call returns once
the transaction holding it has committed. While one batch commits in a worker thread, the next
one gathers in the queue, so the commit rate follows the load (group commit).

When the store cannot commit (disk full, I/O error, read-only, locked: see `faults`), the writer
keeps the batch and tries again with backoff until it can; callers wait, nothing they were
promised is dropped. Intake ops (`call(op, refusable=True)`) are refused instead with
`StoreUnavailable`, so the gateway answers in its retry form and the message comes back later.
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

from .faults import StoreCorrupt, StoreUnavailable, failure_kind, fault_kind, is_corrupt
from .opening import DB_ERRORS, StoreError, corrupt_sentence, open_connection
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
        if is_corrupt(exc):
            raise StoreError(corrupt_sentence(str(path), exc)) from exc
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    return db


class Store:
    """Owns the write connection. Run `run()` in a nursery, then `call()` ops from any task."""

    def __init__(self, path: str | Path, *, synchronous: str = "normal", batch_max: int = 4000,
                 queue_size: int = 20_000, metrics: Any = None, threaded: bool = True,
                 key: str = "", retry_initial: float = 0.05, retry_max: float = 2.0,
                 close_grace: float = 10.0):
        self.path = str(path)
        self.key = key
        """The SQLCipher key ('' for a plain store): readers and backups open it with this."""
        self.db = connect(path, synchronous=synchronous, key=key)
        self.batch_max = batch_max
        self.metrics = metrics
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        """Backoff between attempts while the store cannot commit (seconds, doubling)."""
        self.close_grace = close_grace
        """After `stopping()` or `close()`, how long a failing store is still retried before
        its waiters get `StoreUnavailable`."""
        self.failing: str | None = None
        """Why the last commit failed ("disk full", "corrupt"...), None when commits succeed."""
        self._send, self._receive = trio.open_memory_channel[Op](queue_size)
        self._cache = WriterCache()
        self._closed = False
        self._give_up_at: float | None = None
        self._retrying = False
        self._corrupt: BaseException | None = None
        """Set (for good) once an op found the file damaged: health reports it until restart."""
        self.threaded = threaded
        """Commit in a worker thread (the default). False commits on the trio thread, which
        blocks it; tests use it so that MockClock time does not jump during a commit."""

    @property
    def conversation_cache_size(self) -> int:
        """The most (our, their) -> conversation entries the writer remembers."""
        return self._cache.conversations.maxsize

    def cached_conversations(self) -> int:
        """How many it remembers now (read from any thread: a `len()`)."""
        return len(self._cache.conversations)

    async def call(self, op: Op, *, refusable: bool = False) -> Any:
        """Queue `op`, wait until its transaction commits, return its result.

        Once queued, the op will be committed: a cancellation that arrives meanwhile takes
        effect when the commit is done, so the caller always learns the outcome. While the
        store cannot commit, the call waits until it can, unless `refusable` (intake): then it
        raises `StoreUnavailable` and nothing is written.
        """
        op._done = trio.lowlevel.current_task()
        op._refusable = refusable
        await self._enqueue(op)
        result: Any = await trio.lowlevel.wait_task_rescheduled(_not_abortable)
        return result

    async def post(self, op: Op) -> None:
        """Queue `op` without waiting for its commit (a failure is logged, not raised)."""
        op._done = None
        op._refusable = False
        await self._enqueue(op)

    async def _enqueue(self, op: Op) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")
        if op._refusable and self._retrying:
            raise self._unavailable()
        try:
            self._send.send_nowait(op)  # the common case: no task switch
        except trio.WouldBlock:
            await self._send.send(op)  # the queue is full: wait (backpressure)

    def _unavailable(self) -> StoreUnavailable:
        return StoreUnavailable(self.failing or "failing", retry_after=max(1.0, self.retry_max))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The writer loop. Ends (after a last flush) when `close()` is called, and only then.

        It is shielded from cancellation: tasks waiting in `call()` cannot be cancelled (they
        must learn whether their write committed), so the writer serves them until the owner
        closes the store, which `Server.run` always does on its way out.
        """
        task_status.started()
        receive = self._receive
        with trio.CancelScope(shield=True):
            while True:
                try:
                    first = await receive.receive()
                except trio.EndOfChannel:
                    break
                batch = [first]
                self._top_up(batch)
                await self._commit_until_done(batch)

    def _top_up(self, batch: list[Op]) -> None:
        while len(batch) < self.batch_max:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break

    async def _commit_until_done(self, batch: list[Op]) -> None:
        """Commit `batch`; while the store cannot commit, keep it and try again with backoff."""
        delay = self.retry_initial
        while True:
            if self.threaded:
                left, fault = await trio.to_thread.run_sync(self._commit, batch)
            else:
                left, fault = self._commit(batch)
                await trio.lowlevel.checkpoint()
            self._answer(batch[:len(batch) - len(left)])  # `left` is always a tail of `batch`
            if self._corrupt is not None and self.failing != "corrupt":
                self._failed(self._corrupt)
            if fault is None:
                self._recovered()
                return
            self._failed(fault)
            batch = []
            for op in left:
                if op._refusable:
                    self._answer_error(op, self._unavailable())  # intake: retried by the gateway
                else:
                    batch.append(op)
            if not batch:
                self._retrying = False  # only intake was waiting: the next op tries again
                return
            if self._give_up_at is not None and trio.current_time() >= self._give_up_at:
                self._give_up(batch)
                return
            self._retrying = True
            await trio.sleep(delay)
            delay = min(delay * 2, self.retry_max)
            self._top_up(batch)

    def _answer(self, batch: list[Op]) -> None:
        reschedule = trio.lowlevel.reschedule
        for op in batch:
            if op._done is not None:
                failure = op._failure
                reschedule(op._done, outcome.Value(op._result) if failure is None
                           else outcome.Error(failure))

    @staticmethod
    def _answer_error(op: Op, error: Exception) -> None:
        if op._done is not None:
            trio.lowlevel.reschedule(op._done, outcome.Error(error))

    def _failed(self, fault: BaseException) -> None:
        kind = failure_kind(fault)
        if kind == "corrupt":
            log.error("store: %s", corrupt_sentence(self.path, fault))
        elif self.failing != kind:
            log.error("store: cannot commit to %s (%s: %s); intake is refused and the writes "
                      "are kept and retried until it can", self.path, kind, fault)
        self.failing = kind
        if self.metrics is not None:
            self.metrics.store_failures.labels(kind=kind).inc()
            self.metrics.store_failing.set(1)

    def _recovered(self) -> None:
        self._retrying = False
        if self.failing is not None and not self._corrupt:
            log.warning("store: commits to %s succeed again (after %s)", self.path, self.failing)
            self.failing = None
            if self.metrics is not None:
                self.metrics.store_failing.set(0)

    def _give_up(self, batch: list[Op]) -> None:
        """Closing, and the store still cannot commit: tell the waiters, log what is lost."""
        posted = sum(op._done is None for op in batch)
        log.error("store: %s still cannot commit (%s) while shutting down: %d writes not "
                  "saved (%d of them receipts or other best-effort writes); unprocessed "
                  "messages are replayed on the next start", self.path, self.failing,
                  len(batch), posted)
        error = self._unavailable()
        for op in batch:
            self._answer_error(op, error)
        while True:
            try:
                op = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self._answer_error(op, error)

    def stopping(self) -> None:
        """The server is shutting down: a store that cannot commit is tried `close_grace`
        seconds more, then the ops waiting for it fail with `StoreUnavailable` (so the tasks
        waiting in `call()` can end)."""
        if self._give_up_at is None:
            self._give_up_at = trio.current_time() + self.close_grace

    def close(self) -> None:
        """Stop taking ops; `run()` commits what is queued, then returns."""
        self.stopping()
        self._closed = True
        self._send.close()

    def _commit(self, batch: list[Op]) -> tuple[list[Op], BaseException | None]:
        """Commit `batch` (in the worker thread). Returns the ops left uncommitted because the
        store cannot commit, with that fault (([], None) when everything was handled)."""
        started = time.perf_counter()
        conn = self.db.conn
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            for op in batch:
                op._failure = None
                op._result = op.apply(cur, self._cache)
            cur.execute("COMMIT")
        except Exception as exc:
            self._rollback(cur)
            if fault_kind(exc) is not None:
                return batch, exc
            for i, op in enumerate(batch):  # isolate the bad op: commit each one on its own
                fault = self._commit_one(op, cur)
                if fault is not None:
                    return batch[i:], fault
        if self.metrics is not None:
            self.metrics.store_commit_seconds.observe(time.perf_counter() - started)
            self.metrics.store_batch_size.observe(len(batch))
        return [], None

    def _rollback(self, cur: sqlite3.Cursor) -> None:
        if self.db.conn.in_transaction:
            try:
                cur.execute("ROLLBACK")
            except DB_ERRORS as exc:  # SQLite may have rolled back already
                log.debug("store: rollback: %s", exc)
        self._cache.forget()

    def _commit_one(self, op: Op, cur: sqlite3.Cursor) -> BaseException | None:
        """Commit one op; its own error fails it alone. Returns a store fault, not handled."""
        try:
            cur.execute("BEGIN IMMEDIATE")
            op._failure = None
            op._result = op.apply(cur, self._cache)
            cur.execute("COMMIT")
        except Exception as exc:
            self._rollback(cur)
            if fault_kind(exc) is not None:
                return exc
            if is_corrupt(exc):  # logged once, by `_failed`
                self._corrupt = exc
                failure: Exception = StoreCorrupt(corrupt_sentence(self.path, exc))
            else:
                failure = exc
                log.exception("store: %s failed", type(op).__name__)
            if op._done is not None:  # posted: nobody waits for it
                op._failure = failure
                op._result = None
        return None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A synchronous read on the writer's connection (start-up and tests only)."""
        return self.db.execute(sql, params).fetchall()

    def shutdown(self) -> None:
        self.db.conn.close()


def _not_abortable(raise_cancel: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED
