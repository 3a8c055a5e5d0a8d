"""`intercept report`: the impact report, read from the store (read-only)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from ..config import Config
from ..foundation import charts
from ..foundation.stats import Proportion, wilson
from ..store.experiments import Comparison, SplitRef
from ..store.report import Report
from ..store.returns import WINDOWS, Cohort, ReturnRow
from .options import db_option, load_config, open_store_readonly, since, store_config_option

if TYPE_CHECKING:
    from ..engine import Machine


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
@click.option("--experiment", metavar="NAME",
              help="Compare the branches of this experiment (a split's `experiment:`).")
@click.option("--campaign", metavar="NAME", help="Compare this campaign's opening variants.")
@click.option("--effect", type=click.FloatRange(0, 1, min_open=True), default=0.1,
              show_default=True,
              help="With --experiment/--campaign: the difference (0.1 = 10 percentage points) "
                   "the sample size per branch is for.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as a self-contained HTML page with SVG charts.")
def report(config_path: Path | None, db: Path | None, city: str | None, since: float | None,
           period: str, experiment: str | None, campaign: str | None, effect: float,
           as_json: bool, html_path: Path | None) -> None:
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

    --experiment NAME compares the branches of a split declared `experiment: NAME` in the
    scenario folder: conversations, outcomes, deterrence delivered, hand-offs, return
    contacts (of the buyers' first conversations) and length, each proportion with its 95%
    Wilson interval, and the conversations per branch needed to detect a difference of
    --effect (two-sided, alpha 0.05, power 0.8). --campaign NAME does the same for a
    campaign's opening variants: replied, positive, handed off, meeting, opted out, of the
    numbers its first text reached.

    --html FILE writes all of it as one page with inline SVG charts (messages per day per
    city, the funnels, return contacts and experiment branches with their intervals; every
    experiment of the scenario folder and every campaign with variants, or only the one asked
    for), no script, counts only.

    The store is opened read-only; it can run beside a serving server.

    \b
    Examples:
      intercept report
      intercept report --period quarter
      intercept report --experiment deter-timing-2024 --effect 0.05
      intercept report --campaign spring-2024 --json
      intercept report --html report.html --since 2024-01-01
      intercept report --city seattle --since 2024-05-01
      intercept report --json --db /var/lib/intercept/intercept.db | jq '.total'
    """
    from ..store.report_document import read_report, report_document

    config = load_config(config_path)
    if city is not None and city not in config.cities:
        raise click.BadParameter(f"unknown city {city!r}; the cities are "
                                 f"{', '.join(sorted(config.cities))}", param_hint="--city")
    if experiment is not None and campaign is not None:
        raise click.UsageError("give --experiment or --campaign, not both")
    if html_path is not None:
        _write_html(config, db, html_path, city=city, since=since, period=period,
                    experiment=experiment, campaign=campaign, effect=effect)
        return
    if experiment is not None or campaign is not None:
        click.echo(_compare(config, db, experiment=experiment, campaign=campaign, city=city,
                            since=since, effect=effect, as_json=as_json))
        return
    conn = open_store_readonly(config, db)
    try:
        result, returns = read_report(conn, city_of={n.number: n.city for n in config.numbers},
                                      as_of=time.time(), since=since, city=city, period=period)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(report_document(result, returns, since=since), indent=2))
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


def _machines(config: Config) -> list[Machine]:
    """The scenarios of the config's folder, compiled."""
    from ..scenarios import compile_folder

    return [m for m, _, _ in compile_folder(config.scenario_dir,
                                            read_limit=config.runtime.read_limit)]


def _splits(config: Config, name: str) -> list[SplitRef]:
    """The splits of the scenario folder declared experiment `name`."""
    from ..errors import ScenarioError

    try:
        machines = _machines(config)
    except ScenarioError as exc:
        raise click.ClickException(f"the scenarios do not compile: {exc}") from None
    found = [SplitRef(m.name, node.record, tuple(b.name for b in node.split))
             for m in machines if (node := m.experiments.get(name)) is not None]
    if not found:
        known = sorted({key for m in machines for key in m.experiments})
        raise click.BadParameter(
            f"no scenario in {config.scenario_dir} declares experiment {name!r}; "
            + (f"the experiments are {', '.join(known)}" if known else "none declares one"),
            param_hint="--experiment")
    return found


def _compare(config: Config, db: Path | None, *, experiment: str | None,
             campaign: str | None, city: str | None, since: float | None, effect: float,
             as_json: bool) -> str:

    result = _comparison(config, db, experiment=experiment, campaign=campaign, city=city,
                         since=since, effect=effect)
    if as_json:
        return json.dumps(msgspec.to_builtins(result) | {
            "since": None if since is None else datetime.fromtimestamp(since, UTC).isoformat(),
            "city": city}, indent=2)
    return "\n".join(comparison_lines(result, since=since, city=city))


def _comparison(config: Config, db: Path | None, *, experiment: str | None,
                campaign: str | None, city: str | None, since: float | None,
                effect: float) -> Comparison:
    from ..store.experiments import compare_campaign, compare_experiment
    from ..store.returns import city_lookup

    splits = _splits(config, experiment) if experiment is not None else []
    conn = open_store_readonly(config, db)
    try:
        conn.row_factory = None
        if experiment is not None:
            result = compare_experiment(
                conn, experiment, splits, as_of=time.time(), effect=effect, since=since,
                city=city, city_of_number=city_lookup(
                    conn, {n.number: n.city for n in config.numbers}))
        else:
            assert campaign is not None
            result = compare_campaign(conn, campaign, effect=effect, since=since, city=city)
    finally:
        conn.close()
    if not result.arms and campaign is not None and config.campaign(campaign) is None:
        raise click.BadParameter(f"no campaign {campaign!r} in the config or the store",
                                 param_hint="--campaign")
    return result


def _declared_experiments(config: Config) -> list[str]:
    """Every experiment of the scenario folder; none if it does not compile."""
    from ..errors import ScenarioError

    try:
        machines = _machines(config)
    except ScenarioError:
        return []
    return sorted({name for m in machines for name in m.experiments})


def _write_html(config: Config, db: Path | None, path: Path, *, city: str | None,
                since: float | None, period: str, experiment: str | None,
                campaign: str | None, effect: float) -> None:
    from ..store.report import impact_report, messages_per_day
    from ..store.retention import add_purged
    from ..store.returns import city_lookup, returns_report

    city_of = {n.number: n.city for n in config.numbers}
    conn = open_store_readonly(config, db)
    try:
        conn.row_factory = None
        result = add_purged(conn, impact_report(conn, since=since, city=city, city_of=city_of),
                            since=since, city=city)
        returns = returns_report(conn, as_of=time.time(), city_of_number=city_lookup(
            conn, city_of), period=period, since=since, city=city)
        daily = messages_per_day(conn, since=since, city=city, city_of=city_of)
    finally:
        conn.close()
    if experiment is None and campaign is None:
        wanted = [(name, None) for name in _declared_experiments(config)] + [
            (None, c.name) for c in config.campaigns if c.variants]
    else:
        wanted = [(experiment, campaign)]
    comparisons = [_comparison(config, db, experiment=e, campaign=c, city=city, since=since,
                               effect=effect) for e, c in wanted]
    period_text = "all time" if since is None else (
        "since " + datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC"))
    page = render_html(
        title="Impact report" + (f", {city}" if city else ""),
        subtitle=f"{period_text}; made {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        report=result, daily=daily, returns=returns, comparisons=comparisons)
    path.write_text(page, encoding="utf-8")
    click.echo(f"wrote {path}: {page.count('<svg')} charts, {len(comparisons)} "
               f"experiment{'s' if len(comparisons) != 1 else ''} compared")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def proportion_text(p: Proportion) -> str:
    """``8/10 80.0% [49.0–94.3]``; a dash without trials."""
    if not p.trials:
        return "-"
    assert p.low is not None and p.high is not None
    return f"{p.successes}/{p.trials} {_percent(p.rate)} [{100 * p.low:.1f}–{100 * p.high:.1f}]"


def comparison_lines(result: Comparison, *, since: float | None = None,
                     city: str | None = None) -> list[str]:
    """The comparison as a table: one column per branch, one row per figure."""
    period = "all time" if since is None else (
        "since " + datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC"))
    what = (f"Experiment {result.name} ({', '.join(result.scenarios)})"
            if result.kind == "experiment" else f"Campaign {result.name}, opening variants")
    lines = [f"{what}, {period}" + (f", {city}" if city else ""), ""]
    if not result.arms:
        return [*lines, "(no conversation in it yet)"]
    header = ["", *(a.name for a in result.arms), f"needed per branch ({result.effect:g})"]
    rows = [["conversations", *(str(a.conversations) for a in result.arms), ""]]
    for figure, needed in result.needed.items():
        rows.append([figure, *(proportion_text(a.rates[figure]) for a in result.arms),
                     "-" if needed is None else str(needed)])
    rows.append(["length (messages)", *(
        "-" if a.length is None or a.length.mean is None else
        f"{a.length.mean:.1f}" + ("" if a.length.low is None else
                                   f" [{a.length.low:.1f}–{a.length.high:.1f}]")
        for a in result.arms), ""])
    lines += _table(header, rows)
    lines += ["", "Intervals are 95% (Wilson for proportions); 'needed per branch': "
              "conversations per branch to detect that difference (alpha 0.05, power 0.8)."]
    return lines


def _html_comparison(result: Comparison) -> list[str]:
    what = "Experiment" if result.kind == "experiment" else "Campaign variants"
    out = [f"<h2>{what}: {charts.text(result.name)}</h2>"]
    if not result.arms:
        return [*out, '<p class="note">No conversation in it yet.</p>']
    out.append(charts.table(
        ["", *(a.name for a in result.arms), f"needed per branch ({result.effect:g})"],
        [["conversations", *(a.conversations for a in result.arms), ""]]
        + [[figure, *(_html_share(a.rates[figure]) for a in result.arms),
            "–" if n is None else n] for figure, n in result.needed.items()]))
    for figure in result.needed:
        if figure.startswith("outcome "):
            continue
        out.append(charts.interval_chart(f"{result.name}: {figure}",
                                         [(a.name, a.rates[figure]) for a in result.arms]))
    return out


def _html_share(p: Proportion) -> str:
    if not p.trials or p.low is None or p.high is None:
        return "–"
    return f"{p.successes}/{p.trials} ({p.rate:.0%}, {p.low:.0%}–{p.high:.0%})"


def render_html(*, title: str, subtitle: str, report: Report,
                daily: dict[str, dict[str, int]], returns: Sequence[ReturnRow],
                comparisons: Sequence[Comparison]) -> str:
    """The page of `intercept report --html` (charts and tables: foundation/charts.py)."""
    rows = [*report.cities, report.total] if len(report.cities) != 1 else report.cities
    t = report.total
    parts = [f"<h1>{charts.text(title)}</h1>", f'<p class="note">{charts.text(subtitle)}</p>',
             "<h2>Messages per day, per city</h2>",
             charts.line_chart("Messages per day, per city", daily),
             "<h2>Victim outreach</h2>",
             charts.bar_chart("Victim outreach funnel", [
                 ("numbers found", t.outreach.numbers_found), ("contacted", t.outreach.contacted),
                 ("replied", t.outreach.replied), ("handed off", t.outreach.handed_off),
                 ("positive", t.outreach.positive), ("meetings", t.outreach.meetings),
                 ("services", t.outreach.connected)]),
             charts.table(["city", "numbers found", "contacted", "replied", "opted out",
                           "handed off", "positive", "meetings", "services"],
                          [[c.city, c.outreach.numbers_found, c.outreach.contacted,
                            c.outreach.replied, c.outreach.opted_out, c.outreach.handed_off,
                            c.outreach.positive, c.outreach.meetings, c.outreach.connected]
                           for c in rows]),
             "<h2>Buyer deterrence</h2>",
             charts.bar_chart("Buyer deterrence funnel", [
                 ("buyers", t.buyers.buyers), ("conversations", t.buyers.conversations),
                 ("deterrence sent", t.buyers.deterred)]),
             charts.table(["city", "buyers", "conversations", "messages", "deterrence sent",
                           "median length"],
                          [[c.city, c.buyers.buyers, c.buyers.conversations, c.buyers.messages,
                            c.buyers.deterred, "–" if c.buyers.median_length is None
                            else f"{c.buyers.median_length:g}"] for c in rows])]
    if returns:
        parts.append("<h2>Return contacts</h2>")
        parts.append('<p class="note">Buyers whose first conversation delivered the deterrence, '
                     "and those who left it before; came back: texted any of our buyer numbers "
                     "again within the window (only buyers whose window has passed).</p>")
        parts.append(charts.table(
            ["city", "period", "deterred", *(f"back {d}d" for d in WINDOWS), "left before",
             *(f"back {d}d" for d in WINDOWS), "open"],
            [[r.city, r.period, r.deterred.buyers,
              *(_html_share(wilson(r.deterred.back[d], r.deterred.judged[d])) for d in WINDOWS),
              r.left.buyers, *(_html_share(wilson(r.left.back[d], r.left.judged[d]))
                               for d in WINDOWS), r.open] for r in returns]))
        total = returns[-1]
        for days in WINDOWS:
            parts.append(charts.interval_chart(f"Came back within {days} days", [
                ("deterred", wilson(total.deterred.back[days], total.deterred.judged[days])),
                ("left before deterrence", wilson(total.left.back[days],
                                                  total.left.judged[days]))]))
    for comparison in comparisons:
        parts += _html_comparison(comparison)
    parts.append('<p class="note">Intervals are 95% (Wilson for proportions). Counts only: no '
                 "number and no message is in this page.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{charts.text(title)}</title><style>{charts.STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
