"""`intercept scenario reload | replay | stats`: scenario commands that need a server or a store."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import click

from ..authoring.replay import replay as replay_turns
from ..engine import ConversationState, load_scenario
from ..errors import ScenarioError, ScenarioErrors
from ..foundation.terminal import printable
from .options import (
    ApiClient,
    db_option,
    load_config,
    open_store_readonly,
    store_config_option,
)


@click.command()
@store_config_option
@click.option("--url", help="The server's HTTP address (default: http.listen of the config).")
@click.option("--token", envvar="INTERCEPT_API_TOKEN", show_envvar=True,
              help="An admin token (default: the one the server wrote for the local CLI).")
def reload(config_path: Path | None, url: str | None, token: str | None) -> None:
    """Reload the running server's scenario folder, and its config file's [[numbers]] and
    [cities].

    All or nothing: a broken scenario or config file, or one that changes what only a
    restart can (the gateway, the store, [http]...), is refused and the versions and config
    running now stay live. Live conversations keep the scenario version, persona and city
    they started with; new ones get the new ones. Sending the server SIGHUP does the same
    (errors then go to its log). It sends an admin token: --token / INTERCEPT_API_TOKEN,
    else the one the server wrote for the CLI on its machine, and only after checking that
    the server serves the store of the config (docs/operations.md).

    \b
    Examples:
      intercept scenario reload
      INTERCEPT_API_TOKEN=... intercept scenario reload --url http://127.0.0.1:8080
      kill -HUP $(pidof -s intercept)
    """
    import httpx

    client = ApiClient(url, token, config_path)
    client.check_server()
    base, source = client.base, client.source
    headers = {"Authorization": f"Bearer {client.token}"}
    try:
        response = httpx.post(f"{base}/api/scenarios/reload", timeout=60, headers=headers)
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
@store_config_option
@db_option
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
    config = load_config(config_path)
    try:
        machine = load_scenario(scenario_file, read_limit=config.runtime.read_limit)
    except ScenarioErrors as exc:
        raise click.ClickException("\n".join(e.render() for e in exc.errors)) from None
    except ScenarioError as exc:
        raise click.ClickException(exc.render()) from None
    from ..store.scenario_reads import stored_conversation

    with open_store_readonly(config, db) as conn:
        stored = stored_conversation(conn, conversation_id)
    if stored is None:
        raise click.ClickException(f"no conversation {conversation_id} in the store")
    inbound = stored.inbound
    state_was = msgspec_state(stored.state)
    context = {k: v for k, v in (state_was.vars if state_was else {}).items()
               if k.startswith(("persona.", "city."))}
    events = [(m.at, 0, f"buyer: {m.body}") for m in inbound]
    events += [(m.at, 1, f"bot:   {m.body}") for m in stored.replies]
    was = [line for _, _, line in sorted(events, key=lambda e: (e[0], e[1]))]
    replayed = replay_turns(machine, conversation_id, context,
                            [(m.body, m.at) for m in inbound], config.optout)
    state, now_lines = replayed.state, replayed.lines
    label = f"{stored.scenario} v{stored.version}"
    diff = list(difflib.unified_diff(was, now_lines, fromfile=f"stored ({label})",
                                     tofile=f"replayed ({machine.name} v{machine.version})",
                                     lineterm=""))
    if not diff:
        click.echo(f"identical: {len(inbound)} buyer messages give the same answers "
                   f"(outcome {state.outcome or 'none yet'})")
        return
    for line in diff:
        click.echo(printable(line))
    click.echo(f"outcome: stored {stored.outcome or 'none yet'}, replayed "
               f"{state.outcome or 'none yet'}")


def msgspec_state(text: str | None) -> ConversationState | None:
    import msgspec

    return msgspec.json.decode(text, type=ConversationState) if text else None


@click.command()
@store_config_option
@db_option
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
    config = load_config(config_path)
    from ..store.scenario_reads import scenario_funnel

    with open_store_readonly(config, db) as conn:
        funnel = scenario_funnel(conn, name, version)
    versions, reached, outcomes = funnel.versions, funnel.reached, funnel.outcomes
    moves = [(m.source, m.target, m.trigger, m.count) for m in funnel.moves]
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
