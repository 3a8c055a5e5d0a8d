"""The `intercept` command line."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import trio

from .config import Config, duration, load_config
from .errors import ConfigError, InterceptError, ScenarioError

if TYPE_CHECKING:
    from .server import Server

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="INTERCEPT_CONFIG", show_envvar=True,
    help="Config file (TOML). Default: ./config/intercept.toml if present, else the shipped one.")


def _load(config_path: Path | None) -> Config:
    from .resources import default_config_path

    try:
        return load_config(config_path or default_config_path())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if verbose < 2:  # httpx logs every request at INFO: one line per message sent
        logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intercept")
def main() -> None:
    """Intercept: an SMS conversation server for anti-trafficking organisations.

    \b
    Examples:
      intercept serve                      # run on the defaults (simulated gateway)
      intercept chat --city seattle        # text the Seattle persona yourself
      intercept scenario check scenarios/*.yaml
    """


@main.command()
@_config_option
@click.option("-v", "--verbose", count=True, help="-v for INFO logs, -vv for DEBUG.")
def serve(config_path: Path | None, verbose: int) -> None:
    """Run the server until SIGTERM or Ctrl-C, then shut down gracefully.

    \b
    Examples:
      intercept serve
      intercept serve --config /etc/intercept/intercept.toml -v
      INTERCEPT_HTTP_LISTEN=0.0.0.0:8080 intercept serve
    With the simulated gateway, text a persona over HTTP:
      curl -s localhost:8080/sim/messages \\
        -d '{"from": "+12065550199", "to": "+12065550100", "text": "hey u there?"}'
    """
    _setup_logging(max(verbose, 1))
    config = _load(config_path)
    from .server import Server

    # Tens of thousands of live conversations are millions of long-lived objects: with the
    # default thresholds the collector walks all of them every few seconds under load, and
    # each full pass stops the process for 0.3-1 s. Collecting the young generation less
    # often lets per-message objects die first, so far fewer reach the old generation.
    gc.set_threshold(50_000, 20, 20)

    async def run() -> None:
        try:
            server = Server(config)
        except InterceptError as exc:
            raise click.ClickException(str(exc)) from None
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT,
                                           signal.SIGHUP) as signals:
                await nursery.start(server.run)
                click.echo(f"intercept: serving {len(config.numbers)} numbers "
                           f"(gateway {config.gateway.display_url}, store {config.store.path}"
                           + (f", http {' '.join(server.http_addresses)}"
                              if server.http_addresses else "") + ")", err=True)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        nursery.start_soon(_reload_on_hangup, server)
                        continue
                    server.stop()
                    break

    try:
        trio.run(run)
    except BaseExceptionGroup as group:
        # Binding the HTTP port is the one OSError expected at start-up; say it plainly.
        failure = _only_leaf(group)
        if isinstance(failure, OSError):
            raise click.ClickException(f"http.listen: cannot listen on {config.http.listen}: "
                                       f"{failure.strerror or failure}") from None
        if isinstance(failure, click.ClickException):
            raise failure from None
        if isinstance(failure, InterceptError):  # e.g. the SMSC refused our bind
            raise click.ClickException(str(failure)) from None
        raise


async def _reload_on_hangup(server: Server) -> None:
    """SIGHUP: reload the scenarios; a broken folder is refused and the old versions stay."""
    try:
        report = await server.reload_scenarios()
    except ScenarioError as exc:
        logging.getLogger("intercept").error("scenario reload refused; the running versions "
                                             "stay:\n%s", exc)
    else:
        click.echo(f"intercept: scenarios reloaded: {report.summary()}", err=True)


def _only_leaf(exc: BaseException) -> BaseException:
    """The single exception inside nested exception groups (or the group if there are more)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@main.command()
@_config_option
@click.option("--city", help="Text the persona of this city (a key of [cities]).")
@click.option("--to", "to_number", help="Text this one of our numbers.")
@click.option("--from", "from_number", default="+12065550199", show_default=True,
              help="The number you text from.")
@click.option("--fast", is_flag=True, help="Skip the human-like reply delays.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the conversation in this SQLite file (default: a temporary one).")
def chat(config_path: Path | None, city: str | None, to_number: str | None, from_number: str,
         fast: bool, db: Path | None) -> None:
    """Play the buyer: text a persona from the terminal.

    The real actor, engine and store run in this process with the simulated gateway. Replies are
    printed as they would arrive. With standard input piped, each line is one message, and the
    command exits after the replies to the last one. Bytes that are not UTF-8 are sent as
    U+FFFD (a warning names the line); control characters are printed escaped (\\x1b).

    \b
    Examples:
      intercept chat --city seattle
      printf 'hey\\nhow much\\n8pm\\nmy place\\nok\\n' | intercept chat --city seattle --fast
    """
    _setup_logging(0)
    config = _load(config_path)
    from .chat import ChatError, run_chat
    from .phone import to_e164

    if city and to_number:
        raise click.UsageError("give --city or --to, not both")
    if to_number:
        ours = to_e164(to_number)
        number = config.number(ours) if ours else None
        if number is None:
            raise click.UsageError(f"--to {to_number}: not one of our numbers (see "
                                   "'intercept numbers')")
    else:
        candidates = [n for n in config.numbers if city is None or n.city == city]
        if not candidates:
            raise click.UsageError(f"--city {city}: no number for that city; cities: "
                                   f"{', '.join(sorted(config.cities))}")
        number = candidates[0]
    theirs = to_e164(from_number)
    if theirs is None:
        raise click.UsageError(f"--from {from_number}: not a valid phone number")
    with tempfile.TemporaryDirectory(prefix="intercept-chat-") as tmp:
        store_path = db or Path(tmp) / "chat.db"
        try:
            trio.run(run_chat, config, number, theirs, store_path, fast)
        except (ChatError, InterceptError) as exc:
            raise click.ClickException(str(exc)) from None


@main.command()
@_config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--health", is_flag=True,
              help="Failed deliveries per number over [health] window, from the store.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="With --health: the server's SQLite file (default: store.path).")
def numbers(config_path: Path | None, as_json: bool, health: bool, db: Path | None) -> None:
    """List our numbers with their city, persona, scenario and contracted rate.

    The rate is the most messages per second the number may send: its own `rate`, else the
    gateway's default (Twilio's rate_per_number; over SMPP the bind's rate, shared).

    With --health: each number's messages settled in the last [health] window (delivered or
    failed), the failed share, the main reasons (carrier_filtered, unregistered_sender,
    carrier_opt_out, blocked, unreachable, expired, rejected, other) and whether campaigns
    pause it (share at or above pause_share with at least min_messages settled). The store is
    opened read-only, beside a serving server.

    \b
    Examples:
      intercept numbers
      intercept numbers --json | jq .persona.name
      intercept numbers --health
      intercept numbers --health --json | jq 'select(.paused)'
    """
    config = _load(config_path)
    if health:
        _numbers_health(config, db, as_json)
        return
    for n in config.numbers:
        city = config.cities[n.city]
        rate, source = _rate_of(config, n.rate)
        if as_json:
            click.echo(json.dumps({"number": n.number, "city": n.city, "city_name": city.name,
                                   "scenario": n.scenario, "kind": n.kind,
                                   "persona": {"name": n.persona.name, "age": n.persona.age,
                                               "style": n.persona.style},
                                   "rate": rate, "rate_source": source}))
        else:
            shown = f"{rate:g}/s ({source})" if rate else f"no limit ({source})"
            click.echo(f"{n.number}  {city.name:<16} {n.persona.name:<12} {n.scenario:<22} "
                       f"{n.kind:<8} {shown}")


def _numbers_health(config: Config, db: Path | None, as_json: bool) -> None:
    from .cli_scenario_ops import _open_store
    from .store.health import number_health

    window = duration(config.health.window)
    conn = _open_store(config, db)
    try:
        healths = number_health(conn, time.time() - window, [n.number for n in config.numbers])
    finally:
        conn.close()
    h = config.health
    if not as_json:
        click.echo(f"last {config.health.window}; campaigns pause a number at "
                   f"{h.pause_share:.0%} failed with {h.min_messages}+ settled")
    for n in config.numbers:
        one = healths[n.number]
        paused = (h.pause_share > 0 and one.settled >= h.min_messages
                  and one.failure_share >= h.pause_share)
        if as_json:
            click.echo(json.dumps({"number": n.number, "kind": n.kind, "settled": one.settled,
                                   "delivered": one.delivered, "failed": one.failed,
                                   "failure_share": round(one.failure_share, 4),
                                   "reasons": dict(one.reasons), "paused": paused}))
            continue
        reasons = ", ".join(f"{r} {c}" for r, c in one.reasons.most_common(3)) or "-"
        click.echo(f"{n.number}  {n.kind:<8} {one.settled:>7} settled  {one.failed:>6} failed "
                   f"{one.failure_share:>6.1%}  {reasons}{'  PAUSED' if paused else ''}")


def _rate_of(config: Config, own: float) -> tuple[float | None, str]:
    """A number's contracted rate and where it comes from."""
    if own:
        return own, "number"
    url = config.gateway.url
    if url.startswith("twilio:"):
        return config.gateway.rate_per_number, "gateway.rate_per_number"
    if url.startswith("smpp:"):
        return config.gateway.rate or None, "the bind's gateway.rate"
    return None, "simulator"


from .cli_ads import ads  # noqa: E402
from .cli_advocate import advocate  # noqa: E402
from .cli_backup import backup, encrypt, restore  # noqa: E402
from .cli_buyers import buyers  # noqa: E402
from .cli_campaign import campaign  # noqa: E402
from .cli_export import export, purge  # noqa: E402
from .cli_report import report  # noqa: E402
from .cli_scenario import scenario  # noqa: E402  (the `scenario` command group)
from .cli_scenario_ops import reload, replay, stats  # noqa: E402
from .cli_token import token  # noqa: E402

main.add_command(scenario)
main.add_command(ads)
main.add_command(advocate)
main.add_command(campaign)
main.add_command(report)
main.add_command(buyers)
main.add_command(export)
main.add_command(purge)
main.add_command(token)
main.add_command(backup)
main.add_command(restore)
main.add_command(encrypt)
scenario.add_command(reload)
scenario.add_command(replay)
scenario.add_command(stats)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
