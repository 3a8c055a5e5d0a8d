"""Online backups of the store and their restore (docs/operations.md#backups).

`backup` copies the store with SQLite's online backup API in one step: it reads one snapshot
(the last committed transaction when it starts) while the server goes on writing (WAL lets a
reader and the writer run side by side). The copy is written 0600 beside its final name and
renamed into place only once it is complete and checked, so a crash never leaves half a backup
under the real name. An encrypted store gives an encrypted backup with the same key.

`restore` checks a backup and puts it in place of the store (the server must be stopped); the
store it replaces is kept beside it as ``<name>.replaced-<time>``.

`run_schedule` takes a backup every ``store.backup_every`` inside the server and keeps the last
``store.backup_keep``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ..foundation.private import private_dir, tighten, touch_private
from .opening import DB_ERRORS, KEY_HINT, StoreError, open_connection, sqlcipher_module
from .schema import MIGRATIONS

log = logging.getLogger(__name__)

SCHEDULED = re.compile(r"intercept-\d{8}T\d{6}Z\.db")
"""The names of scheduled backups (only these are ever deleted by `prune`)."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    bytes: int
    seconds: float
    conversations: int
    schema_version: int


def backup(store: str | Path, out: str | Path, *, key: str = "") -> BackupInfo:
    """Copy the store at `store` into the new file `out` (0600) while it may be in use.

    Raises `StoreError` naming the file when `out` exists or the copy fails."""
    started = time.perf_counter()
    out = Path(out)
    if out.exists():
        raise StoreError(f"{out}: the file exists; give a new file for the backup")
    if not out.parent.exists():
        private_dir(out.parent)
    temp = out.with_name(f".{out.name}.partial")
    temp.unlink(missing_ok=True)
    try:
        info = _snapshot(store, temp, key, journal="DELETE")  # one self-contained file
        assert info is not None
        os.replace(temp, out)
        _fsync(out.parent)
    except DB_ERRORS as exc:
        raise StoreError(f"cannot back up {store} to {out}: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)
    return BackupInfo(out, out.stat().st_size, time.perf_counter() - started, *info)


def _snapshot(source_path: str | Path, temp: Path, key: str, *, journal: str,
              check: bool = True) -> tuple[int, int] | None:
    """Copy the database at `source_path` into the new file `temp` with SQLite's online backup
    (the whole snapshot in one step: consistent while others write), set its journal mode and
    fsync it; with `check`, its figures from `_check`."""
    source = open_connection(source_path, key, readonly=True)
    try:
        target = open_connection(temp, key, create=True)
        try:
            source.backup(target)
            target.execute(f"PRAGMA journal_mode = {journal}")
            info = _check(target, temp) if check else None
        finally:
            target.close()
    finally:
        source.close()
    _fsync(temp)
    return info


def check_backup(path: str | Path, *, key: str = "") -> tuple[int, int]:
    """(conversations, schema version) of the backup at `path`, after an integrity check.

    Raises `StoreError` with a sentence when it is not a usable Intercept store."""
    conn = open_connection(path, key, readonly=True)
    try:
        return _check(conn, Path(path))
    except DB_ERRORS as exc:
        raise StoreError(f"{path}: cannot read the backup: {exc}") from exc
    finally:
        conn.close()


def _check(conn: object, path: Path) -> tuple[int, int]:
    execute = conn.execute  # type: ignore[attr-defined]
    problems = [r[0] for r in execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise StoreError(f"{path}: the database is damaged: {'; '.join(problems[:5])}")
    version = execute("PRAGMA user_version").fetchone()[0]
    if version == 0 or version > len(MIGRATIONS):
        raise StoreError(f"{path}: not a store of this Intercept (schema version {version}, "
                         f"this Intercept has 1 to {len(MIGRATIONS)})")
    return execute("SELECT count(*) FROM conversations").fetchone()[0], version


def restore(backup_file: str | Path, store: str | Path, *, key: str = "",
            now: float | None = None) -> Path | None:
    """Put the checked backup in place of the store at `store` (the server must be stopped).

    The store it replaces (its WAL checkpointed first) is renamed ``<store>.replaced-<time>``
    and returned; None when there was no store. Refused (`StoreError`) while another process,
    such as the server, has the store open."""
    store = Path(store)
    try:
        check_backup(backup_file, key=key)
    except StoreError as exc:
        raise StoreError(f"cannot restore from {backup_file}: it is not a usable backup "
                         f"({exc}); nothing was changed") from exc
    if not store.parent.exists():
        private_dir(store.parent)
    temp = store.with_name(f".{store.name}.restoring")
    temp.unlink(missing_ok=True)
    try:
        _snapshot(backup_file, temp, key, journal="WAL", check=False)
    except DB_ERRORS as exc:
        temp.unlink(missing_ok=True)
        raise StoreError(f"cannot restore {backup_file} to {store}: {exc}") from exc
    kept = None
    current = None
    try:
        if store.exists():
            current = _lock_out_others(store, key)
            current.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            kept = store.with_name(f"{store.name}.replaced-{stamp}")
            os.replace(store, kept)
            tighten(kept, 0o600)
        for suffix in ("-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        os.replace(temp, store)
        _fsync(store.parent)
    except DB_ERRORS as exc:
        raise StoreError(f"cannot restore over {store}: {exc}") from exc
    finally:
        if current is not None:
            current.close()
        temp.unlink(missing_ok=True)
    return kept


def _lock_out_others(store: Path, key: str) -> Any:
    """A connection holding the store's exclusive lock, so that nothing else has it open."""
    conn = open_connection(store, key, timeout=0, isolation_level=None)
    try:
        _take_exclusive_lock(conn, store, "restore over")
    except BaseException:
        conn.close()
        raise
    return conn


def _take_exclusive_lock(conn: Any, store: Path, doing: str) -> None:
    """Hold the exclusive lock of `store` on `conn` until it closes. Every connection to a WAL
    database holds a shared lock while open, so this fails while the server runs."""
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")  # the lock stays: locking_mode is EXCLUSIVE
    except DB_ERRORS as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(f"cannot {doing} {store}: it is open in another process "
                             "(is the server running?); stop the server first") from None
        raise


def encrypt(store: str | Path, key: str, *, now: float | None = None) -> Path:
    """Encrypt the plain store at `store` with `key` in place (the server must be stopped).

    SQLCipher's ``sqlcipher_export`` copies it into a new encrypted file, which is checked with
    the key and then takes the store's name. The plain original is kept as
    ``<store>.plain-<time>`` and returned: delete it once the server runs on the new one."""
    store = Path(store)
    cipher = sqlcipher_module()
    if not key:
        raise StoreError(f"cannot encrypt {store}: no store key is set ({KEY_HINT})")
    if cipher is None:
        raise StoreError(f"cannot encrypt {store}: SQLCipher is not installed: pip install "
                         "'intercept[sqlcipher]'")
    plain = open_connection(store)  # a StoreError if it is encrypted already, or missing
    plain.close()
    temp = store.with_name(f".{store.name}.encrypting")
    temp.unlink(missing_ok=True)
    touch_private(temp)
    source = cipher.connect(str(store), timeout=0, isolation_level=None)
    try:
        _take_exclusive_lock(source, store, "encrypt")
        source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = source.execute("PRAGMA user_version").fetchone()[0]
        source.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(temp), key))
        source.execute("SELECT sqlcipher_export('encrypted')")
        source.execute(f"PRAGMA encrypted.user_version = {int(version)}")
        source.execute("DETACH DATABASE encrypted")
        check_backup(temp, key=key)
        _fsync(temp)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        kept = store.with_name(f"{store.name}.plain-{stamp}")
        os.replace(store, kept)
        for suffix in ("-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        os.replace(temp, store)
        _fsync(store.parent)
    except DB_ERRORS as exc:
        raise StoreError(f"cannot encrypt {store}: {exc}") from exc
    finally:
        source.close()
        temp.unlink(missing_ok=True)
    return kept


def scheduled_name(now: float) -> str:
    return time.strftime("intercept-%Y%m%dT%H%M%SZ.db", time.gmtime(now))


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest scheduled backups in `folder` beyond the newest `keep`."""
    backups = sorted(p for p in folder.iterdir() if SCHEDULED.fullmatch(p.name))
    doomed = backups[:-keep] if keep > 0 else backups
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


async def run_schedule(store: str | Path, folder: Path, *, every: float, keep: int,
                       key: str = "", clock: Callable[[], float] = time.time,
                       threaded: bool = True, metrics: Any = None) -> None:
    """Take a backup into `folder` every `every` seconds, keeping the newest `keep`; a failed
    backup is logged and retried at the next tick (the server goes on). `threaded=False`
    copies on the trio thread (tests, so that MockClock time stands still during a copy)."""
    while True:
        await trio.sleep(every)
        now = clock()
        try:
            private_dir(folder)
            take = partial(backup, store, folder / scheduled_name(now), key=key)
            info = await trio.to_thread.run_sync(take) if threaded else take()
            removed = prune(folder, keep)
        except (OSError, StoreError) as exc:
            log.error("scheduled backup failed: %s", exc)
            if metrics is not None:
                metrics.backups.labels("failed").inc()
            continue
        if metrics is not None:
            metrics.backups.labels("ok").inc()
            metrics.backup_last_success.set(now)
        log.info("backup %s: %d bytes, %d conversations, %.1f s; %d old backups deleted",
                 info.path, info.bytes, info.conversations, info.seconds, len(removed))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
