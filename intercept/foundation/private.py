"""Private files: what holds buyers' and victims' numbers and messages is the service user's alone.

Store files (the database, its -wal and -shm), media, backups, exports and signing keys are
created 0600 and their folders 0700 whatever the umask, and existing ones that are looser are
tightened (with a log line naming the file and both modes) when Intercept opens them.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def tighten(path: str | Path, mode: int | None = None) -> bool:
    """Remove every permission bit of `path` beyond `mode` (0600 for a file, 0700 for a
    folder); True if it changed. A missing path is left alone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if mode is None:
        mode = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode == 0:
        return False
    try:
        os.chmod(path, current & mode)
    except PermissionError:  # not ours (a command run by another user): say so, go on
        log.warning("%s is mode %04o, readable beyond its owner, and this user cannot "
                    "tighten it: run chmod %04o %s as its owner", path, current, current & mode,
                    path)
        return False
    log.info("tightened %s from %04o to %04o (it holds private data)", path, current,
             current & mode)
    return True


def tighten_tree(folder: str | Path) -> int:
    """Tighten `folder`, every folder under it (0700) and every file (0600); the count changed."""
    changed = int(tighten(folder, DIR_MODE))
    for root, dirs, files in os.walk(folder):
        changed += sum(tighten(os.path.join(root, d), DIR_MODE) for d in dirs)
        changed += sum(tighten(os.path.join(root, f), FILE_MODE) for f in files)
    return changed


def private_dir(path: str | Path) -> Path:
    """Create `path` (and missing parents) 0700, or tighten it if it exists; return it."""
    path = Path(path)
    if path.is_dir():
        tighten(path, DIR_MODE)
        return path
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for created in missing:  # mkdir's mode is masked by the umask; parents get 0777 & ~umask
        if created.is_dir():
            os.chmod(created, DIR_MODE)
    return path


def touch_private(path: str | Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist, else tighten it to 0600.

    SQLite gives the -wal and -shm files the mode of the database file, so creating the
    database this way before SQLite opens it makes all three private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     FILE_MODE)
    except FileExistsError:
        tighten(path, FILE_MODE)
        return
    os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask too
    os.close(fd)


def write_private(path: str | Path, data: bytes) -> None:
    """Write a new file `path` with mode 0600 (fails if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                 FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), FILE_MODE)
        f.write(data)
