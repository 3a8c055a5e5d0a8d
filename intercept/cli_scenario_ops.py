"""`intercept scenario reload | replay | stats`: scenario commands that need a server or a store."""

from __future__ import annotations

import difflib
import json
import sqlite3
import sys
from pathlib import Path

import click

from .authoring.replay import replay as replay_turns
from .config import Config
from .engine import ConversationState, load_scenario
from .errors import ScenarioError, ScenarioErrors
from .terminal import printable

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="INTERCEPT_CONFIG", show_envvar=True, help="Config file (TOML).")
_db_option = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path),
    help="The server's SQLite file (default: store.path of the config).")


def _config(config_path: Path | None) -> Config:
    from .cli import _load

    return _load(config_path)


def _open_store(config: Config, db: Path | None) -> sqlite3.Connection:
    path = db or Path(config.store.path)
    if not path.is_file():
        raise click.ClickException(f"no store at {path} (give --db, or the config whose "
                                   "store.path the server uses)")
    from .config import store_key
    from .store.opening import StoreError, open_connection, row_type

    try:
        conn = open_connection(path, store_key(config), readonly=True)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    conn.row_factory = row_type(conn)
    return conn


@click.command()
@_config_option
@click.option("--url", help="The server's HTTP address (default: http.listen of the config).")
@click.option("--token", envvar="INTERCEPT_API_TOKEN", show_envvar=True,
              help="An admin token (default: the one the server wrote for the local CLI).")
def reload(config_path: Path | None, url: str | None, token: str | None) -> None:
    """Reload the running server's scenario folder.

    All or nothing: a broken file is refused and the versions running now stay live. Live
    conversations keep the version they started on; new ones get the new version. Sending
    the server SIGHUP does the same (errors then go to its log). It sends an admin token:
    --token / INTERCEPT_API_TOKEN, else the one the server wrote for the CLI on its machine.

    \b
    Examples:
      intercept scenario reload
      INTERCEPT_API_TOKEN=... intercept scenario reload --url http://127.0.0.1:8080
      kill -HUP $(pidof -s intercept)
    """
    import httpx

    from .cli_advocate import base_url
    from .cli_token import api_token

    config = _config(config_path)
    base = url or base_url(config.http.listen)
    secret, source = api_token(config, token)
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        response = httpx.post(f"{base.rstrip('/')}/api/scenarios/reload", timeout=60,
                              headers=headers)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"no server answers at {base} ({exc}): is 'intercept "
                                   "serve' running with HTTP enabled?") from None
    body = response.json() if response.headers.get("content-type", "").startswith(
        "application/json") else {}
    if response.status_code == 200:
        click.echo(body["summary"])
        return
    if response.status_code in (401, 403, 429):
        raise click.ClickException(f"the server refused the token from {source}: "
                                   f"{body.get('error', response.text)}")
    for line in body.get("errors", [body.get("error", response.text)]):
        click.echo(line, err=True)
    click.echo("reload refused: the running versions stay live", err=True)
    sys.exit(1)


@click.command()
@_config_option
@_db_option
@click.option("--conversation", "conversation_id", type=int, required=True,
              help="The stored conversation's id.")
@click.option("--scenario", "scenario_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), required=True, help="The scenario file to replay against.")
def replay(config_path: Path | None, db: Path | None, conversation_id: int,
           scenario_file: Path) -> None:
    """Re-run a stored conversation's messages against another scenario and show where the
    bot's answers diverge (a unified diff of the two transcripts).

    The replay uses the conversation's own persona, city and random seed, and feeds the
    buyer's messages in order, one step each; timers are not replayed.

    \b
    Examples:
      intercept scenario replay --conversation 42 --scenario scenarios/buyer-deterrence.yaml
      intercept scenario replay --conversation 42 --scenario new.yaml --db /var/lib/intercept.db
    """
    config = _config(config_path)
    try:
        machine = load_scenario(scenario_file, read_limit=config.runtime.read_limit)
    except ScenarioErrors as exc:
        raise click.ClickException("\n".join(e.render() for e in exc.errors)) from None
    except ScenarioError as exc:
        raise click.ClickException(exc.render()) from None
    with _open_store(config, db) as conn:
        row = conn.execute("SELECT * FROM conversations WHERE id = ?",
                           (conversation_id,)).fetchone()
        if row is None:
            raise click.ClickException(f"no conversation {conversation_id} in the store")
        inbound = conn.execute("SELECT body, received_at FROM inbound WHERE conversation_id = ? "
                               "ORDER BY conv_seq", (conversation_id,)).fetchall()
        outbound = conn.execute("SELECT body, created_at FROM outbox WHERE conversation_id = ? "
                                "AND kind = 'reply' ORDER BY position", (conversation_id,)
                                ).fetchall()
    stored = msgspec_state(row["state"])
    context = {k: v for k, v in (stored.vars if stored else {}).items()
               if k.startswith(("persona.", "city."))}
    events = [(r["received_at"], 0, f"buyer: {r['body']}") for r in inbound]
    events += [(r["created_at"], 1, f"bot:   {r['body']}") for r in outbound]
    was = [line for _, _, line in sorted(events, key=lambda e: (e[0], e[1]))]
    replayed = replay_turns(machine, conversation_id, context,
                            [(r["body"], r["received_at"]) for r in inbound], config.optout)
    state, now_lines = replayed.state, replayed.lines
    label = f"{row['scenario']} v{row['version']}"
    diff = list(difflib.unified_diff(was, now_lines, fromfile=f"stored ({label})",
                                     tofile=f"replayed ({machine.name} v{machine.version})",
                                     lineterm=""))
    if not diff:
        click.echo(f"identical: {len(inbound)} buyer messages give the same answers "
                   f"(outcome {state.outcome or 'none yet'})")
        return
    for line in diff:
        click.echo(printable(line))
    click.echo(f"outcome: stored {row['outcome'] or 'none yet'}, replayed "
               f"{state.outcome or 'none yet'}")


def msgspec_state(text: str | None) -> ConversationState | None:
    import msgspec

    return msgspec.json.decode(text, type=ConversationState) if text else None


@click.command()
@_config_option
@_db_option
@click.argument("name")
@click.option("--version", "version", type=int, help="Only conversations on this version.")
@click.option("--json", "as_json", is_flag=True, help="Print the funnel as JSON.")
def stats(config_path: Path | None, db: Path | None, name: str, version: int | None,
          as_json: bool) -> None:
    """The funnel of a scenario: conversations per version, how many reached each state,
    how often each transition was taken, and the outcomes.

    The same counts are live in /metrics as intercept_scenario_transitions_total and
    intercept_conversations_ended_total.

    \b
    Examples:
      intercept scenario stats buyer-deterrence
      intercept scenario stats buyer-deterrence --version 2 --json
    """
    config = _config(config_path)
    where, params = "scenario = ?", [name]
    if version is not None:
        where += " AND version = ?"
        params.append(version)
    with _open_store(config, db) as conn:
        versions = conn.execute(f"SELECT version, count(*) FROM conversations WHERE {where} "
                                "GROUP BY version ORDER BY version", params).fetchall()
        reached = conn.execute(f"SELECT target, count(DISTINCT conversation_id) FROM transitions "
                               f"WHERE {where} GROUP BY target ORDER BY 2 DESC, 1",
                               params).fetchall()
        moves = conn.execute(f"SELECT source, target, trigger, count(*) FROM transitions "
                             f"WHERE {where} GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2",
                             params).fetchall()
        outcomes = conn.execute(f"SELECT coalesce(outcome, '(open)'), count(*) FROM "
                                f"conversations WHERE {where} GROUP BY 1 ORDER BY 2 DESC",
                                params).fetchall()
    if not versions:
        raise click.ClickException(f"no conversations of scenario {name!r} in the store")
    if as_json:
        click.echo(json.dumps({
            "scenario": name, "versions": {v: n for v, n in versions},
            "reached": {t: n for t, n in reached},
            "transitions": [{"from": s, "to": t, "trigger": g, "count": n}
                            for s, t, g, n in moves],
            "outcomes": {o: n for o, n in outcomes}}, indent=2))
        return
    total = sum(n for _, n in versions)
    click.echo(f"{name}: {total} conversations (" + ", ".join(
        f"v{v}: {n}" for v, n in versions) + ")")
    click.echo("\nreached state            conversations")
    for target, n in reached:
        click.echo(f"  {target:<24} {n:>8}  {100 * n / total:5.1f}%")
    click.echo("\ntransition                                          count")
    for source, target, trigger, n in moves:
        click.echo(f"  {(source or '(start)') + ' -> ' + target:<36} {trigger:<12} {n:>6}")
    click.echo("\noutcome                  conversations")
    for outcome, n in outcomes:
        click.echo(f"  {outcome:<24} {n:>8}  {100 * n / total:5.1f}%")
