"""Copying the write-ahead log into the database beside the writer (`store.checkpoints =
"beside"`), instead of inside the writer's commits (SQLite's way, the default).

SQLite checkpoints inside the commit that takes the log past 1,000 pages: near capacity that is
many checkpoints a second in the writer, each syncing the log and the database to disk, and
while the writer waits on the disk every conversation waits on the writer (the core stood
12.5 % idle in I/O wait at ~1,650 texts a second, docs/performance.md). The `Checkpointer`
copies the log from a connection of its own, in a worker thread, every `every` seconds while
the writer goes on committing (SQLite runs one checkpoint beside the writer).

The writer still checkpoints once the log passes `writer_pages`: a checkpoint beside a busy
writer never reaches the log's last frames, and only one that reaches them lets the next commit
start the log again from its beginning. The writer's does (nothing commits beside it), and it
has little left to copy, but it syncs the disk where every commit waits, now and then instead
of several times a second: more texts a second near capacity, a longer tail below it (the
figures are in docs/performance.md, "Checkpoints beside the writer").
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

import trio

from .faults import failure_kind
from .opening import DB_ERRORS, open_connection
from .ops import Op, WriterCache
from .writer import Store

log = logging.getLogger(__name__)

EVERY = 0.05
"""Seconds between checkpoints beside the writer."""
WRITER_PAGES = 40_000
"""The writer's own checkpoint threshold while the checkpointer runs (pages of 4 KiB: the log
file grows to ~160 MB). SQLite's default, 1,000, is what the writer uses without it."""


class Autocheckpoint(Op):
    """Set the writer connection's checkpoint threshold (a setting of that connection: it must be
    made where the writer's statements run)."""

    __slots__ = ("pages",)

    def __init__(self, pages: int):
        self.pages = pages

    def apply(self, cur: sqlite3.Cursor, cache: WriterCache) -> None:
        cur.execute(f"PRAGMA wal_autocheckpoint = {int(self.pages)}")


class Checkpointer:
    """Run `run()` in a nursery beside `Store.run()`; cancel it before the store closes (the
    writer's connection, closed last, then checkpoints the rest and removes the log)."""

    def __init__(self, store: Store, *, every: float = EVERY, writer_pages: int = WRITER_PAGES,
                 metrics: Any = None):
        self.store = store
        self.every = every
        self.writer_pages = writer_pages
        self.metrics = metrics
        self.failing: str | None = None
        """Why the last checkpoint failed (logged once per kind), None when they succeed."""

    @property
    def applies(self) -> bool:
        """Whether there is a log to copy: a file, not an in-memory store."""
        return self.store.path != ":memory:"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        if not self.applies:
            task_status.started()
            return
        conn = open_connection(self.store.path, self.store.key, check_same_thread=False,
                               isolation_level=None)
        try:
            await self.store.call(Autocheckpoint(self.writer_pages))
            task_status.started()
            while True:
                await trio.sleep(self.every)
                await self.checkpoint(conn)
        finally:
            conn.close()

    async def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One checkpoint on `conn`, in a worker thread unless the store commits inline (tests).
        A failure is logged once per kind and tried again next time: the writer's own
        checkpoints keep the log bounded meanwhile, and its commits report the store's health."""
        started = time.perf_counter()
        try:
            if self.store.threaded:  # not abandoned on cancel: the connection closes after it
                frames = await trio.to_thread.run_sync(_checkpoint, conn)
            else:
                frames = _checkpoint(conn)
        except DB_ERRORS as exc:
            self._failed(exc)
            return
        if self.failing is not None:
            log.info("store: checkpoints beside the writer succeed again (after %s)",
                     self.failing)
            self.failing = None
        if self.metrics is not None:
            self.metrics.store_checkpoint_seconds.observe(time.perf_counter() - started)
            self.metrics.store_log_pages.set(frames)

    def _failed(self, exc: BaseException) -> None:
        kind = failure_kind(exc)
        if kind != self.failing:
            log.warning("store: a checkpoint of %s beside the writer failed (%s: %s); tried "
                        "again every %g s, the writer's own checkpoints go on",
                        self.store.path, kind, exc, self.every)
        self.failing = kind


def _checkpoint(conn: sqlite3.Connection) -> int:
    """Copy what the log holds and no reader needs; return the log's length in pages."""
    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return max(int(frames), 0)
