"""Bearer tokens and roles of the admin API.

Tokens come from ``api.tokens`` (normally the environment variable ``INTERCEPT_API_TOKENS``,
``role:token[:name],...``) and from ``api.tokens_file`` (one ``role token [name]`` per line;
re-read when it changes, so a token is revoked by deleting its line), and from the store
(``intercept token create``, looked up by `access.Access`). A presented token is compared with
every configured one in constant time. No request is trusted for where it comes from: a
reverse proxy on the same machine makes every request look local.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from ..config import Config
from ..errors import ConfigError

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


class Role(IntEnum):
    """Each role can do everything the roles below it can."""

    viewer = 1
    advocate = 2
    admin = 3


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (written to the audit log) and its role."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class _Token:
    digest: bytes
    principal: Principal


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _role(text: str, where: str) -> Role:
    try:
        return Role[text.strip().lower()]
    except KeyError:
        raise ConfigError(f"{where}: unknown role {text.strip()!r}; use viewer, advocate or "
                          "admin") from None


def _token(role: Role, secret: str, name: str, where: str) -> _Token:
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}: the token of {name!r} is shorter than {MIN_TOKEN_LENGTH} "
                          "characters; make one with: python -c 'import secrets; "
                          "print(secrets.token_urlsafe())'")
    return _Token(_digest(secret), Principal(name, role))


def parse_tokens_env(text: str, where: str = "INTERCEPT_API_TOKENS") -> list[_Token]:
    """``role:token[:name],...`` (commas or newlines between entries)."""
    tokens = []
    entries = [e.strip() for e in text.replace("\n", ",").split(",") if e.strip()]
    for i, entry in enumerate(entries, start=1):
        parts = entry.split(":", 2)
        if len(parts) < 2 or not parts[1]:
            raise ConfigError(f"{where}: entry {i} is not 'role:token[:name]'")
        role = _role(parts[0], f"{where}: entry {i}")
        name = parts[2].strip() if len(parts) == 3 and parts[2].strip() else f"{role.name}-{i}"
        tokens.append(_token(role, parts[1], name, f"{where}: entry {i}"))
    return tokens


def parse_tokens_file(text: str, where: str) -> list[_Token]:
    """One ``role token [name]`` per line; blank lines and ``#`` comments are skipped."""
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ConfigError(f"{where}:{number}: expected 'role token [name]'")
        role = _role(parts[0], f"{where}:{number}")
        name = parts[2].strip() if len(parts) == 3 else f"{role.name}-line{number}"
        tokens.append(_token(role, parts[1], name, f"{where}:{number}"))
    return tokens


class Authenticator:
    """Finds the principal of a request; `tokens_file` is re-read when its mtime changes."""

    def __init__(self, env_tokens: list[_Token], tokens_file: Path | None = None):
        self._env_tokens = env_tokens
        self.tokens_file = tokens_file
        self._file_tokens: list[_Token] = []
        self._file_stamp: tuple[float, int] | None = None
        self._tokens = list(env_tokens)
        if tokens_file is not None:
            self._refresh(strict=True)
        self._check_unique()

    @classmethod
    def from_config(cls, config: Config) -> Authenticator:
        """Read the tokens of `config`; raises `ConfigError` naming the bad entry."""
        env_tokens = parse_tokens_env(config.api.tokens, "api.tokens (INTERCEPT_API_TOKENS)")
        path = None
        if config.api.tokens_file:
            path = Path(os.path.expanduser(config.api.tokens_file))
            if not path.is_absolute():
                path = config.base_dir / path
        return cls(env_tokens, path)

    def _refresh(self, *, strict: bool = False) -> None:
        assert self.tokens_file is not None
        try:
            stat = self.tokens_file.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp == self._file_stamp:
                return
            tokens = parse_tokens_file(self.tokens_file.read_text(encoding="utf-8"),
                                       str(self.tokens_file))
        except (OSError, ConfigError) as exc:
            message = (f"api.tokens_file: cannot read {self.tokens_file}: {exc.strerror}"
                       if isinstance(exc, OSError) else str(exc))
            if strict:
                raise ConfigError(message) from None
            log.error("%s; the tokens read before stay in use", message)
            self._file_stamp = None
            return
        self._file_stamp = stamp
        self._file_tokens = tokens
        self._tokens = self._env_tokens + tokens

    def _check_unique(self) -> None:
        seen = set()
        for token in self._tokens:
            if token.digest in seen:
                raise ConfigError(f"api tokens: the token of {token.principal.name!r} is "
                                  "configured twice")
            seen.add(token.digest)

    def find(self, presented: str) -> Principal | None:
        """The principal whose token is `presented`, comparing with every token."""
        if self.tokens_file is not None:
            self._refresh()
        digest = _digest(presented)
        found = None
        for token in self._tokens:  # no early exit: the time does not tell which one matched
            if hmac.compare_digest(digest, token.digest):
                found = token.principal
        return found


class AuthError(Exception):
    """401 (who are you?), 403 (not allowed) or 429 (too many failures), with a sentence for
    the caller. `reason` names a failed authentication for the metric and the audit log."""

    def __init__(self, status: int, message: str, principal: Principal | None = None, *,
                 reason: str = "", retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.principal = status, message, principal
        self.reason, self.retry_after = reason, retry_after
        self.audit = False
        """Written to the audit log even on a route that is not audited (a failed attempt)."""
        self.detail = ""
        """The audit log's note (never the token)."""


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header; else raise `AuthError` 401."""
    if not authorization:
        raise AuthError(401, "this endpoint needs a token: send 'Authorization: Bearer TOKEN'",
                        reason="missing")
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise AuthError(401, "the Authorization header must be 'Bearer TOKEN'",
                        reason="malformed")
    return presented.strip()


def check_role(principal: Principal | None, needed: Role) -> Principal:
    """`principal` if it has at least the `needed` role; else raise `AuthError` 401 or 403."""
    if principal is None:
        raise AuthError(401, "the token is not valid", reason="invalid")
    if principal.role < needed:
        raise AuthError(403, f"this needs the {needed.name} role; the token "
                             f"{principal.name!r} has the {principal.role.name} role",
                        principal)
    return principal


def authenticate(auth: Authenticator, authorization: str | None, needed: Role) -> Principal:
    """The caller's principal among the configured tokens (the store's aside)."""
    return check_role(auth.find(bearer(authorization)), needed)
