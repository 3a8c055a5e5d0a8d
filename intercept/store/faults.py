"""Store faults: which SQLite errors mean "the disk, not the operation", and what to say.

    InterceptError
    ├── StoreUnavailable  the store cannot commit now (disk full, I/O error, read-only,
    │                     locked): intake is refused in the gateway's retry form
    │                     (defined in intercept.errors, so gateways need not import the store)
    └── StoreCorrupt      the file is damaged: stop and restore it from a backup

A *fault* is retried by the writer with the batch kept (nothing acknowledged is lost); an
operation's own error (a constraint, a bug) fails only that operation, as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..errors import InterceptError, StoreUnavailable
from .opening import DATABASE_ERRORS, DB_ERRORS

log = logging.getLogger(__name__)

# Primary result codes (https://sqlite.org/rescode.html) of a store that cannot commit now.
_FAULTS = {
    5: "locked",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    7: "out of memory",  # SQLITE_NOMEM
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR
    13: "disk full",  # SQLITE_FULL
    14: "cannot open",  # SQLITE_CANTOPEN
    15: "locked",  # SQLITE_PROTOCOL
}
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB



class StoreCorrupt(InterceptError):
    """The database file is damaged."""


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def fault_kind(exc: BaseException) -> str | None:
    """A short name ("disk full", "I/O error"...) when `exc` is a store fault, else None."""
    if isinstance(exc, DB_ERRORS):  # SQLCipher's errors are not sqlite3's
        code = _code(exc)
        if code in _FAULTS:
            return _FAULTS[code]
        if code is None and "disk is full" in str(exc):
            return "disk full"
    return None  # an OSError raised by an op's own code is that op's error, not the store's


def is_corrupt(exc: BaseException) -> bool:
    """Whether `exc` says the database file is damaged (or is not a database at all)."""
    if not isinstance(exc, DATABASE_ERRORS):
        return False
    code = _code(exc)
    if code is not None:
        return code in _CORRUPT
    text = str(exc)
    return "malformed" in text or "not a database" in text


def failure_kind(exc: BaseException) -> str:
    """What the log and the metrics call a failed write: "corrupt", a fault kind, or "error"."""
    return "corrupt" if is_corrupt(exc) else (fault_kind(exc) or "error")


@asynccontextmanager
async def nursery_stopping_on_store_faults(stopping: trio.Event) -> AsyncIterator[trio.Nursery]:
    """A nursery whose tasks may end with `StoreUnavailable` once `stopping` is set.

    During a shutdown the writer gives up on a store that still cannot commit
    (`Store.stopping`), and tasks waiting for a commit get `StoreUnavailable`: their work is
    in the store or replayed on the next start, so it ends them quietly. Before `stopping`, the
    error propagates as any other.
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except* StoreUnavailable as group:
        if not stopping.is_set():
            raise
        log.warning("shutdown: %d tasks ended without their last commit (the store cannot "
                    "commit)", len(group.exceptions))
