"""Every connection to the store is opened here: plain SQLite, or SQLCipher when a key is set.

With a key (``store.key``, i.e. INTERCEPT_STORE_KEY, or ``store.key_file``) the whole database
file, its WAL and every backup are encrypted by SQLCipher (the optional ``sqlcipher3-binary``
package: ``pip install 'intercept[sqlcipher]'``). The writer, the API's readers and the CLI all
open the store through `open_connection`, so none of them can forget the key. A wrong or missing
key is a `StoreError` sentence, never SQLite's "file is not a database".

`DB_ERRORS` is the tuple of database exception classes to catch: SQLCipher's are not
subclasses of the standard library's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from ..errors import InterceptError
from ..foundation.private import private_dir, tighten, touch_private

KEY_HINT = "INTERCEPT_STORE_KEY or store.key_file"


class StoreError(InterceptError):
    """The database file cannot be opened, or belongs to a newer Intercept."""


def sqlcipher_module() -> ModuleType | None:
    """SQLCipher's DB-API module, or None when intercept[sqlcipher] is not installed."""
    try:
        from sqlcipher3 import dbapi2
    except ImportError:
        return None
    return dbapi2


def _database_errors() -> tuple[type[Exception], ...]:
    cipher = sqlcipher_module()
    return (sqlite3.Error,) if cipher is None else (sqlite3.Error, cipher.Error)


DB_ERRORS: tuple[type[Exception], ...] = _database_errors()
"""Catch these (not just sqlite3.Error) around anything that touches the store."""
DATABASE_ERRORS: tuple[type[Exception], ...] = tuple(
    module.DatabaseError for module in (sqlite3, sqlcipher_module()) if module)
"""The DatabaseError classes of both libraries (what a damaged file raises)."""


def sqlcipher_available() -> bool:
    return sqlcipher_module() is not None


def row_type(conn: Any) -> Any:
    """The ``Row`` class that fits `conn` (SQLCipher's or the standard library's)."""
    cipher = sqlcipher_module()
    return cipher.Row if cipher is not None and isinstance(conn, cipher.Connection) else sqlite3.Row


def secure_files(path: str | Path) -> None:
    """Tighten the database file and its -wal and -shm to 0600 (each logged if it changes)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        tighten(f"{path}{suffix}", 0o600)


def open_connection(path: str | Path, key: str = "", *, readonly: bool = False,
                    create: bool = False, timeout: float = 30.0, **kwargs: Any
                    ) -> sqlite3.Connection:
    """A connection to the store at `path`, keyed when `key` is set.

    `create` makes the file (0600, its folder 0700 if new) when missing; otherwise a missing
    file is an error. `readonly` opens it read-only. Raises `StoreError` naming the file when
    the key is wrong, missing or cannot be used.
    """
    memory = str(path) == ":memory:"
    if not memory:
        file = Path(path)
        if create:
            if not file.parent.exists():
                private_dir(file.parent)
            touch_private(file)
        elif not file.is_file():
            raise StoreError(f"no store at {file}")
        secure_files(file)
    if key:
        cipher = sqlcipher_module()
        if cipher is None:
            raise StoreError(f"cannot open the store {path}: a store key is set ({KEY_HINT}) "
                             "but SQLCipher is not installed: pip install 'intercept[sqlcipher]'")
        module: Any = cipher
    else:
        module = sqlite3
    target = f"file:{quote(str(path))}?mode=ro" if readonly and not memory else str(path)
    conn = None
    try:
        conn = module.connect(target, uri=readonly and not memory, timeout=timeout, **kwargs)
        if key:
            conn.execute("PRAGMA key = '" + key.replace("'", "''") + "'")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DB_ERRORS as exc:
        if conn is not None:
            conn.close()
        if _damaged(path):
            raise StoreError(corrupt_sentence(str(path), exc)) from exc
        if "not a database" in str(exc) or "encrypted" in str(exc):
            raise StoreError(_unreadable(path, key)) from None
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    return conn  # type: ignore[no-any-return]


OPERATIONS_DOC = "docs/operations.md"


def corrupt_sentence(path: str, exc: BaseException) -> str:
    """What to tell the operator about a damaged store."""
    return (f"the store {path} is damaged ({exc}): stop every Intercept using it, move the file "
            f"aside (with its -wal and -shm files) and restore the last backup; see 'A corrupt "
            f"store' in {OPERATIONS_DOC}")


def _damaged(path: str | Path) -> bool:
    """Whether a file SQLite cannot read is plainly damaged rather than perhaps encrypted: an
    encrypted store's first page looks random (almost every byte value occurs), while zeroed,
    truncated or foreign files do not."""
    if str(path) == ":memory:":
        return False
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    if head.startswith(b"SQLite format 3\x00"):
        return True  # a plain database that SQLite cannot read: damaged pages
    return len(head) < 1024 or len(set(head)) < 192


def _unreadable(path: str | Path, key: str) -> str:
    if key:
        return (f"cannot open the store {path}: the store key ({KEY_HINT}) is wrong, or the "
                "file is not an encrypted Intercept store")
    return (f"cannot open the store {path}: it is not a readable SQLite database; if it is "
            f"encrypted, give its key ({KEY_HINT})")
