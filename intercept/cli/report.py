"""`intercept report`: the impact report, read from the store (read-only)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ..foundation.stats import wilson
from ..store.returns import WINDOWS, Cohort, ReturnRow
from .options import db_option, load_config, open_store_readonly, since, store_config_option


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = round(seconds)
    if total < 3600:
        return f"{total // 60}m {total % 60:02d}s"
    text = str(timedelta(seconds=total))
    return text.replace(", ", " ").rsplit(":", 1)[0].replace(":", "h ") + "m"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        out.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                             for i, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    return out


@click.command()
@store_config_option
@db_option
@click.option("--city", help="Only this city (a key of [cities]).")
@click.option("--since", "since", callback=since,
              help="Only what started on or after this date (YYYY-MM-DD, UTC) or time.")
@click.option("--period", type=click.Choice(["month", "quarter", "year", "all"]),
              default="month", show_default=True,
              help="Return contacts per city and this period of the first contact (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def report(config_path: Path | None, db: Path | None, city: str | None, since: float | None,
           period: str, as_json: bool) -> None:
    """The impact report, per city.

    Victim outreach: numbers found in ads, contacted (a campaign's first text went out),
    replied, opted out, handed off to an advocate, positive conversations (an advocate
    recorded positive_conversation, meeting_scheduled or connected_to_services), meetings
    (meeting_scheduled) and connections to services. Numbers are counted once each; the rest
    counts conversations.

    Buyer deterrence: buyers engaged (distinct numbers that texted a decoy), conversations,
    messages exchanged (theirs plus ours that went out), deterrence messages sent (outcome
    deterred, and the message went out), and the median conversation length (messages) and
    duration (first to last message: the time wasted). Only conversations that pass the
    buyer-only gate count: never one with a number found in ads or contacted by outreach.

    Return contacts: per city and period of the first contact, buyers whose first
    conversation delivered the deterrence (the message went out) against those who left it
    before, and how many of each texted any of our buyer numbers again within 30 and 90 days
    (counted only once the window has passed); "open" first conversations have not ended.

    The store is opened read-only; it can run beside a serving server.

    \b
    Examples:
      intercept report
      intercept report --period quarter
      intercept report --city seattle --since 2024-05-01
      intercept report --json --db /var/lib/intercept/intercept.db | jq '.total'
    """
    from ..store.report import impact_report
    from ..store.retention import add_purged
    from ..store.returns import city_lookup, returns_report

    config = load_config(config_path)
    if city is not None and city not in config.cities:
        raise click.BadParameter(f"unknown city {city!r}; the cities are "
                                 f"{', '.join(sorted(config.cities))}", param_hint="--city")
    conn = open_store_readonly(config, db)
    try:
        conn.row_factory = None
        result = impact_report(conn, since=since, city=city,
                               city_of={n.number: n.city for n in config.numbers})
        # conversations removed by retention still count (their figures were kept)
        result = add_purged(conn, result, since=since, city=city)
        city_of = {n.number: n.city for n in config.numbers}
        returns = returns_report(conn, as_of=time.time(), city_of_number=city_lookup(conn, city_of),
                                 period=period, since=since, city=city)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps({
            "since": None if since is None else datetime.fromtimestamp(since, UTC).isoformat(),
            "cities": [c.as_json() for c in result.cities],
            "total": result.total.as_json(),
            "returns": [returns_json(r) for r in returns]}, indent=2))
        return
    period = "all time" if since is None else (
        "since " + datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC"))
    click.echo(f"Impact report, {period}" + (f", {city}" if city else ""))
    rows = [*result.cities, result.total] if len(result.cities) != 1 else result.cities
    click.echo("")
    for line in _table(
            ["victim outreach", "numbers found", "contacted", "replied", "opted out",
             "handed off", "positive", "meetings", "services"],
            [[c.city, *(str(v) for v in (
                c.outreach.numbers_found, c.outreach.contacted, c.outreach.replied,
                c.outreach.opted_out, c.outreach.handed_off, c.outreach.positive,
                c.outreach.meetings, c.outreach.connected))] for c in rows]):
        click.echo(line)
    click.echo("")
    for line in _table(
            ["buyer deterrence", "buyers", "conversations", "messages", "deterrence sent",
             "median length", "median time wasted"],
            [[c.city, str(c.buyers.buyers), str(c.buyers.conversations),
              str(c.buyers.messages), str(c.buyers.deterred),
              "-" if c.buyers.median_length is None else f"{c.buyers.median_length:g}",
              _duration(c.buyers.median_duration)] for c in rows]):
        click.echo(line)
    if returns:
        click.echo("")
        for line in _table(
                ["return contacts", "period", "deterred", "delivered", *(
                    f"back {d}d" for d in WINDOWS), "left before", *(
                    f"back {d}d" for d in WINDOWS), "open"],
                [[r.city, r.period, str(r.deterred.buyers), str(r.delivered),
                  *(_back(r.deterred, d) for d in WINDOWS), str(r.left.buyers),
                  *(_back(r.left, d) for d in WINDOWS), str(r.open)] for r in returns]):
            click.echo(line)
        click.echo("(back Nd: of the buyers whose first contact ended N days ago or more, how "
                   "many texted us again within N days)")
    if not result.cities:
        click.echo("\n(nothing in the store yet)")


def _back(cohort: Cohort, days: int) -> str:
    judged, back = cohort.judged[days], cohort.back[days]
    return "-" if not judged else f"{back}/{judged} {100 * back / judged:.0f}%"


def _cohort_json(cohort: Cohort) -> dict[str, Any]:
    windows = {}
    for days in WINDOWS:
        p = wilson(cohort.back[days], cohort.judged[days])
        windows[f"{days}d"] = {"judged": p.trials, "came_back": p.successes, "rate": p.rate,
                               "low": p.low, "high": p.high}
    return {"buyers": cohort.buyers, "windows": windows}


def returns_json(row: ReturnRow) -> dict[str, Any]:
    """A row of return contacts as JSON, with 95% Wilson intervals of the return rates."""
    return {"city": row.city, "period": row.period, "deterred": _cohort_json(row.deterred),
            "deterrence_delivered": row.delivered, "left_before_deterrence":
                _cohort_json(row.left), "open": row.open}
