"""Admin API tokens kept in the store (`intercept token create`): name, role, SHA-256, use.

The token itself is never stored: it is shown once when made, and a presented token is found
by its digest. The functions take a connection (the CLI writes beside a serving server, as
`intercept ads import` does); `CreateToken` and `TouchTokens` run them in the server's writer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from sqlite3 import Cursor
from typing import Any

from .ops import Op, WriterCache

ROLES = ("viewer", "advocate", "admin")
CLI_TOKEN_ROLE = "admin"
"""The role of the token the server makes for the CLI on its machine."""
PREFIX = "itc_"
"""Every token made here starts with it, so secret scanners and people can recognise one."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class TokenExists(ValueError):
    """A token of that name is already in the store."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    name: str
    role: str
    created_at: float
    last_used_at: float | None


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    """`name`, or raise `ValueError` with a sentence saying what a name may hold."""
    if not NAME.fullmatch(name):
        raise ValueError(f"token name {name!r}: use 1 to 64 letters, digits, '.', '_', '@' "
                         "or '-', starting with a letter or digit")
    return name


def create_token(conn: sqlite3.Connection | Cursor, name: str, role: str, token: str, *,
                 now: float, replace: bool = False) -> None:
    """Store `token` (hashed) under `name`; raise `TokenExists` unless `replace`."""
    check_name(name)
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use {', '.join(ROLES)}")
    if replace:
        conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,))
    try:
        conn.execute("INSERT INTO api_tokens (name, role, digest, created_at) VALUES "
                     "(?, ?, ?, ?)", (name, role, digest(token), now))
    except sqlite3.IntegrityError:
        raise TokenExists(f"a token named {name!r} exists already; revoke it first with "
                          f"'intercept token revoke {name}' or choose another name") from None


def revoke_token(conn: sqlite3.Connection | Cursor, name: str) -> bool:
    """Delete the token `name`; False if there was none."""
    return conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount > 0


def list_tokens(conn: sqlite3.Connection) -> list[TokenRow]:
    return [TokenRow(*row) for row in conn.execute(
        "SELECT name, role, created_at, last_used_at FROM api_tokens ORDER BY name")]


def find_token(conn: sqlite3.Connection | Cursor, token: str) -> tuple[str, str] | None:
    """(name, role) of the stored token `token`, found by its digest."""
    row = conn.execute("SELECT name, role FROM api_tokens WHERE digest = ?",
                       (digest(token),)).fetchone()
    return None if row is None else (row[0], row[1])


class CreateToken(Op):
    """`create_token` in the writer (the server's own credential for the local CLI)."""

    __slots__ = ("name", "now", "replace", "role", "token")

    def __init__(self, name: str, role: str, token: str, *, now: float, replace: bool = False):
        self.name, self.role, self.token, self.now, self.replace = name, role, token, now, replace

    def apply(self, cur: Cursor, cache: WriterCache) -> Any:
        create_token(cur, self.name, self.role, self.token, now=self.now, replace=self.replace)


class TokenKnown(Op):
    """Whether the store holds `token` (by its digest), read on the writer's connection."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        return find_token(cur, self.token) is not None


class TouchTokens(Op):
    """Record when stored tokens were last used."""

    __slots__ = ("names", "now")

    def __init__(self, names: list[str], *, now: float):
        self.names, self.now = names, now

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.executemany("UPDATE api_tokens SET last_used_at = ? WHERE name = ?",
                        [(self.now, n) for n in self.names])
