"""The local CLI's credential: an admin token the server writes (0600) at its first start.

``intercept campaign``, ``advocate``, ``purge``, ``scenario reload``... send the token given with
``--token`` / ``INTERCEPT_API_TOKEN``, else this file's, so that on the server's machine the
user who runs the server needs no setup. The path is ``api.cli_token_file`` (relative to the
config file) or ``STORE.cli-token`` next to the store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

CLI_TOKEN_NAME = "local-cli"
"""The store's name of the credential's token (`intercept token list` shows it)."""


def credential_path(config: Config, store_path: str | Path | None = None) -> Path:
    """Where the local CLI's token is: ``api.cli_token_file`` or next to the store."""
    if config.api.cli_token_file:
        path = Path(os.path.expanduser(config.api.cli_token_file))
        return path if path.is_absolute() else config.base_dir / path
    return Path(f"{store_path or config.store.path}.cli-token")


def read_credential(path: Path) -> str | None:
    """The token in `path`, or None if there is no such file (or it is empty)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def write_credential(path: Path, token: str) -> None:
    """Write `token` to `path`, readable by this user only (0600 whatever the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


async def ensure_credential(store: Store, path: Path, *, now: float) -> None:
    """At start: make the local CLI's admin token and its file unless the file is there.

    A file whose token the store does not know (revoked, or another store's) is left alone
    and named in a warning: revoking the token is how an operator takes it away.
    """
    from .store.tokens import CLI_TOKEN_ROLE, CreateToken, TokenKnown, new_token

    try:
        existing = read_credential(path)
    except OSError as exc:
        log.error("api.cli_token_file: cannot read %s: %s; the CLI on this machine needs "
                  "--token or INTERCEPT_API_TOKEN", path, exc.strerror)
        return
    if existing is not None:
        if path.stat().st_mode & 0o077:
            log.warning("%s, the CLI's admin token, can be read by other users: make it "
                        "private with 'chmod 600 %s'", path, path)
        if await store.call(TokenKnown(existing)):
            log.info("the CLI on this machine uses the admin token in %s", path)
        else:
            log.warning("%s holds a token this store does not know (revoked, or another "
                        "store's): delete the file and restart to make a new one, or give the "
                        "CLI a token with INTERCEPT_API_TOKEN", path)
        return
    token = new_token()
    await store.call(CreateToken(CLI_TOKEN_NAME, CLI_TOKEN_ROLE, token, now=now, replace=True))
    try:
        write_credential(path, token)
    except OSError as exc:
        log.error("api.cli_token_file: cannot write %s: %s; the CLI on this machine needs "
                  "--token or INTERCEPT_API_TOKEN", path, exc.strerror)
        return
    log.info("wrote an admin token for the CLI on this machine to %s (mode 0600; "
             "'intercept token revoke %s' withdraws it)", path, CLI_TOKEN_NAME)
