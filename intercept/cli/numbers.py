"""`intercept numbers`: our numbers, their rates, and (--health) their delivery failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..config import Config
from .options import config_option, load_config, open_store_readonly


@click.command()
@config_option
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
    config = load_config(config_path)
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
    from ..store.health import number_health

    window = float(config.health.window)
    conn = open_store_readonly(config, db)
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

