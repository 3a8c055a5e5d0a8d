"""One server per store: an OS lock on a file next to the store, held while serving.

`fcntl.flock` is released by the kernel when the process ends, however it ends (kill -9
included), so a stale lock file never blocks a restart; the pid written in it only names the
holder in the message a second server prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .writer import StoreError


def lock_path(store_path: str | Path) -> Path:
    """The lock file of a store: ``intercept.db`` -> ``intercept.db.lock``."""
    path = Path(store_path)
    return path.with_name(path.name + ".lock")


class StoreLock:
    """`with StoreLock(path):` holds the store's lock, or raises `StoreError` naming the holder."""

    def __init__(self, store_path: str | Path):
        self.store_path = str(store_path)
        self.path = lock_path(store_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.store_path == ":memory:":
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the store {self.store_path}: cannot create its lock "
                             f"file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise StoreError(
                f"the store {self.store_path} is in use by another Intercept server ({who}, "
                f"lock file {self.path}): stop it first, or give this one its own store.path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the pid of a server that stopped names nobody
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __del__(self) -> None:  # a server built but never run
        with contextlib.suppress(Exception):  # at interpreter exit the kernel releases it
            self.release()

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
