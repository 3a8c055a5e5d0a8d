"""What the command modules share: click options, loading the config, opening the store
read-only, auditing a command, and reaching the running server's admin API.

Every command module imports this one and no other command module.
"""

from __future__ import annotations

import getpass
import logging
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import Config, store_key
from ..config import load_config as read_config
from ..credential import credential_path, read_credential
from ..errors import ConfigError
from ..foundation.phone import to_e164

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="INTERCEPT_CONFIG", show_envvar=True,
    help="Config file (TOML). Default: ./config/intercept.toml if present, else the shipped one.")
store_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="INTERCEPT_CONFIG", show_envvar=True, help="Config file (TOML).")
db_option = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path),
    help="The server's SQLite file (default: store.path of the config).")

_ANY_HOST = ("", "0.0.0.0", "::", "[::]")


def load_config(config_path: Path | None) -> Config:
    """The config at `config_path` (default: the project's or the shipped one); a bad one is a
    `click.ClickException` naming the file and key."""
    from ..foundation.resources import default_config_path

    try:
        return read_config(config_path or default_config_path())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if verbose < 2:  # httpx logs every request at INFO: one line per message sent
        logging.getLogger("httpx").setLevel(logging.WARNING)


def store_path(config: Config, db: Path | None) -> Path:
    """The store the command works on: --db, else store.path of the config."""
    return db or Path(config.store.path)


def open_store_readonly(config: Config, db: Path | None) -> sqlite3.Connection:
    """A read-only connection to the store (rows by name); it can run beside a serving server."""
    path = store_path(config, db)
    if not path.is_file():
        raise click.ClickException(f"no store at {path} (give --db, or the config whose "
                                   "store.path the server uses)")
    from ..store.opening import StoreError, open_connection, row_type

    try:
        conn = open_connection(path, store_key(config), readonly=True)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    conn.row_factory = row_type(conn)
    return conn


def cli_actor() -> str:
    """The audit log's actor for a command run by this user: ``cli:<user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def audit(config: Config, db: Path | None, action: str, detail: str, *, status: int = 200
          ) -> None:
    """One audit row for this command in the store, beside a serving server (see
    `store.audit.audit_beside_server`); store errors are left to the caller."""
    from ..store.audit import audit_beside_server

    audit_beside_server(store_path(config, db), store_key(config), actor=cli_actor(),
                        action=action, detail=detail, status=status)


def since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A --since callback: a date (YYYY-MM-DD, UTC) or an ISO 8601 time, as a timestamp."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
                                 ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def city_numbers(config: Config, city: str | None) -> tuple[str, ...] | None:
    """Our numbers of `city` (None: every number); a bad city is a usage error."""
    if city is None:
        return None
    if city not in config.cities:
        raise click.BadParameter(f"unknown city {city!r}; the cities are "
                                 f"{', '.join(sorted(config.cities))}", param_hint="--city")
    return tuple(n.number for n in config.numbers if n.city == city)


def buyer_number(value: str | None) -> str | None:
    if value is None:
        return None
    number = to_e164(value)
    if number is None:
        raise click.BadParameter(f"{value!r} is not a valid phone number (write it as "
                                 "+12065550199)")
    return number


def api_options(fn: F | None = None, *, role: str = "advocate or admin") -> Any:
    """--url, --token and --config, shared by every command that calls the admin API.

    `@api_options`, or `@api_options(role="admin")` for a command only that role may run (its
    --help names the role)."""
    if fn is None:
        return lambda f: api_options(f, role=role)
    fn = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                      envvar="INTERCEPT_CONFIG", show_envvar=True,
                      help="Config file; its http.listen is the server's address.")(fn)
    fn = click.option("--token", envvar="INTERCEPT_API_TOKEN", show_envvar=True,
                      help=f"Your API token ({role} role).")(fn)
    fn = click.option("--url", help="The server, e.g. http://127.0.0.1:8080 (default: "
                                    "http.listen of the config).")(fn)
    return fn


def base_url(listen: str) -> str:
    """The URL to reach a server listening on `listen` (``host:port``) from this machine."""
    host, _, port = listen.rpartition(":")
    if host in _ANY_HOST:
        host = "[::1]" if host in ("::", "[::]") else "127.0.0.1"
    return f"http://{host}:{port}"


def api_token(config: Config, given: str | None) -> tuple[str, str]:
    """(token, where it came from) for the API commands: --token / INTERCEPT_API_TOKEN, else
    ``api.token``, else the credential file the server wrote at its first start."""
    if given:
        return given, "--token or INTERCEPT_API_TOKEN"
    if config.api.token:
        return config.api.token, "api.token"
    path = credential_path(config)
    try:
        token = read_credential(path)
    except OSError as exc:
        raise click.ClickException(
            f"cannot read the CLI's token in {path}: {exc.strerror}. Run this as the user that "
            "runs the server, or give a token with --token or INTERCEPT_API_TOKEN.") from None
    if token is None:
        raise click.ClickException(
            f"no API token: give one with --token or INTERCEPT_API_TOKEN (make one with "
            f"'intercept token create NAME --role ROLE'), or run this on the server's machine "
            f"after its first start, which writes one to {path}.")
    return token, str(path)


def expected_store(config: Config, url: str, *, named: bool) -> tuple[str, Path, str] | None:
    """(id, path, config file) of the store the server at `url` must serve: the one at
    store.path of `config`. None when `url` was `named` (--url) and this machine has no such
    store: a server elsewhere, nothing to compare with."""
    path = Path(config.store.path)
    source = config.source or "the config"
    if not path.is_file():
        if named:
            return None
        raise click.ClickException(
            f"cannot check that the server at {url} (http.listen of {source}) serves this "
            f"config's store: there is no store at {path} (store.path; a relative one is read "
            "from the current folder). Run this from the server's folder, or give the "
            "server's address with --url.")
    from ..store.identity import read_store_id

    with open_store_readonly(config, None) as conn:
        store_id = read_store_id(conn)
    if store_id is None:
        raise click.ClickException(
            f"the store {path} has no id yet: start 'intercept serve' of this version on it "
            "once (it upgrades the store), then try again.")
    return store_id, path, source


class ApiClient:
    """A few calls to the admin API; every failure becomes a `click.ClickException`.

    Before its first request it checks that the server serves the store of its config (see
    `expected_store`), so the token and the request never go to another server by mistake.
    """

    def __init__(self, url: str | None, token: str | None, config_path: Path | None):
        self.config: Config | None = None
        """The config whose store the server must serve; None (--url and --token): no check."""
        if url is None or not token:
            self.config = load_config(config_path)
            base = url or base_url(self.config.http.listen)
            token, self.source = api_token(self.config, token)
        else:
            base, self.source = url, "--token or INTERCEPT_API_TOKEN"
        self.named = url is not None
        self.base = base.rstrip("/")
        self.token = token
        self._checked = self.config is None

    def check_server(self) -> None:
        """Refuse, naming both stores, when the server answering serves another store."""
        if self._checked:
            return
        assert self.config is not None
        theirs = self._get("/healthz").get("store_id")  # no token: it may be another server
        expected = expected_store(self.config, self.base, named=self.named)
        if expected is None:
            self._checked = True
            return
        ours, path, source = expected
        if not theirs:
            raise click.ClickException(
                f"the server at {self.base} does not say which store it serves (an older "
                f"Intercept?), so this command cannot check it is the server of {path}: "
                "restart that server with this version, or name it with --url and --token.")
        if theirs != ours:
            raise click.ClickException(
                f"the server at {self.base} serves another store (id {theirs}) than {path} "
                f"(id {ours}), the store.path of {source}: give the --config of the server "
                "you mean, or its address with --url.")
        self._checked = True

    def _get(self, path: str) -> dict[str, Any]:
        import httpx

        try:
            response = httpx.get(self.base + path, timeout=30)
            payload = response.json()
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"no server answers at {self.base} ({exc or type(exc).__name__}): is "
                "'intercept serve' running with HTTP enabled? Give its address with --url."
            ) from None
        except ValueError:
            payload = None
        return payload if isinstance(payload, dict) else {}

    def call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> Any:
        import httpx

        self.check_server()
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = httpx.request(method, self.base + path, json=body, params=params,
                                     headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"no server answers at {self.base} ({exc or type(exc).__name__}): is "
                "'intercept serve' running with HTTP enabled? Give its address with --url."
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code < 400:
            return payload
        message = payload.get("error") if isinstance(payload, dict) else None
        message = message or f"HTTP {response.status_code}"
        if response.status_code == 401:
            raise click.ClickException(f"the server refused the token from {self.source}: "
                                       f"{message}. Give a valid one with --token or "
                                       "INTERCEPT_API_TOKEN.")
        if response.status_code == 429:
            raise click.ClickException(f"{message} (the server locks an address out after "
                                       "repeated wrong tokens)")
        if response.status_code == 403:
            raise click.ClickException(f"not allowed: {message}")
        raise click.ClickException(message)
