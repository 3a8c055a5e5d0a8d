"""`intercept token create | list | revoke`: admin API tokens kept (hashed) in the store.

The commands write to the store beside a serving server (WAL), as `intercept ads import` does;
the server looks a presented token up in the store on each request, so a new token works at
once and a revoked one stops at once. Each change and its audit row are one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from ..config import Config, store_key
from ..store.tokens import ROLES
from .options import cli_actor, db_option, load_config

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="INTERCEPT_CONFIG", show_envvar=True,
    help="Config file; its store.path is the store.")


def _store(config: Config, db: Path | None) -> sqlite3.Connection:
    from ..store.writer import StoreError, connect

    path = db or Path(config.store.path)
    if not path.is_file():
        raise click.ClickException(f"no store at {path} (give --db, or the config whose "
                                   "store.path the server uses; the server makes the store at "
                                   "its first start)")
    try:
        return connect(path, synchronous=config.store.synchronous, key=store_key(config)).conn
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def token() -> None:
    """Make, list and revoke the admin API's tokens (kept hashed in the store).

    A token is shown once, when it is made; the store keeps only its SHA-256. Roles: viewer
    (read, numbers masked), advocate (the hand-off queue, full numbers, take-over), admin
    (everything). Tokens set with INTERCEPT_API_TOKENS or api.tokens_file keep working and
    are not listed here. Every change is audited.

    \b
    Examples:
      intercept token create sam --role advocate
      intercept token list
      intercept token revoke sam
    """


@token.command()
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@_config_option
@db_option
def create(name: str, role: str, config_path: Path | None, db: Path | None) -> None:
    """Make a token named NAME and print it (once: it cannot be shown again).

    \b
    Examples:
      intercept token create sam --role advocate
      intercept token create grafana --role viewer --db /var/lib/intercept/intercept.db
      INTERCEPT_API_TOKEN=$(intercept token create ops --role admin) intercept campaign status
    """
    from ..store.audit import audited
    from ..store.tokens import TokenExists, create_token, new_token

    conn = _store(load_config(config_path), db)
    secret = new_token()
    try:
        audited(conn, lambda c: create_token(c, name, role, secret, now=time.time()),
                actor=cli_actor(), action="CLI intercept token create",
                detail=f"token {name!r} ({role})"[:200])
    except (TokenExists, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    click.echo(secret)
    click.echo(f"token {name!r} ({role}) made; it is shown only this once: keep it in a "
               "password manager and send it as 'Authorization: Bearer TOKEN'", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_config_option
@db_option
def list_(as_json: bool, config_path: Path | None, db: Path | None) -> None:
    """List the store's tokens: name, role, when made, when last used (never the token).

    \b
    Examples:
      intercept token list
      intercept token list --json | jq -r 'select(.last_used_at == null) | .name'
    """
    from ..store.tokens import list_tokens

    conn = _store(load_config(config_path), db)
    try:
        rows = list_tokens(conn)
    finally:
        conn.close()
    if as_json:
        for row in rows:
            click.echo(json.dumps({"name": row.name, "role": row.role,
                                   "created_at": row.created_at,
                                   "last_used_at": row.last_used_at}))
        return
    if not rows:
        click.echo("no tokens in the store (make one with 'intercept token create NAME "
                   "--role ROLE')", err=True)
        return
    click.echo(f"{'NAME':<24} {'ROLE':<9} {'CREATED (UTC)':<20} LAST USED (UTC)")
    for row in rows:
        click.echo(f"{row.name:<24} {row.role:<9} {_when(row.created_at):<20} "
                   f"{_when(row.last_used_at)}")


@token.command()
@click.argument("name")
@_config_option
@db_option
def revoke(name: str, config_path: Path | None, db: Path | None) -> None:
    """Revoke the token NAME: the server refuses it from its next request on.

    \b
    Examples:
      intercept token revoke sam
      intercept token revoke local-cli    # the token the server wrote for its local CLI
    """
    from ..store.audit import audited
    from ..store.tokens import revoke_token

    conn = _store(load_config(config_path), db)
    try:
        found = audited(conn, lambda c: revoke_token(c, name), record=bool,
                        actor=cli_actor(), action="CLI intercept token revoke",
                        detail=f"token {name!r}"[:200])
    finally:
        conn.close()
    if not found:
        raise click.ClickException(f"no token named {name!r} in the store ('intercept token "
                                   "list' shows them)")
    click.echo(f"token {name!r} revoked")
