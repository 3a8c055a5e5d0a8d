"""The live progress line and the final report (a dict; text for people, JSON for machines)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import httpx
import trio

from loadtest.state import process_figures
from loadtest.target import EXPERIMENT, SCENARIO_NAME, outbox_statuses

if TYPE_CHECKING:
    from loadtest.state import LoadRun

REPORT_KEYS = ("ok", "transport", "buyers", "duration_s", "messages", "latency_ms", "lost",
               "duplicates", "late", "violations", "errors", "outcomes", "behaviours", "faults",
               "network", "server", "options")


class Progress:
    """One status line on stderr every interval: rewritten in place on a terminal, appended
    every fifth interval otherwise (CI logs)."""

    def __init__(self, run: LoadRun, out: TextIO) -> None:
        self.run = run
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()

    async def loop(self) -> None:
        run, ledger = self.run, self.run.ledger
        interval = run.options.progress_interval
        last_in, last_out, last_t = ledger.sent, ledger.received, trio.current_time()
        tick = 0
        async with httpx.AsyncClient(timeout=1.0) as client:
            try:
                while True:
                    await trio.sleep(interval)
                    tick += 1
                    now = trio.current_time()
                    span = max(now - last_t, 1e-9)
                    rate_in = (ledger.sent - last_in) / span
                    rate_out = (ledger.received - last_out) / span
                    last_in, last_out, last_t = ledger.sent, ledger.received, now
                    live = await self._server_live(client)
                    if run.server is not None:
                        run.server.sample()
                    p99 = ledger.histogram.quantile(0.99)
                    faults = sum(run.phones.faults_injected.values())
                    line = (f"t={now - run.start_at:5.0f}s  in {rate_in:7,.0f}/s  out "
                            f"{rate_out:7,.0f}/s  buyers {run.live:,}  live conversations "
                            f"{'?' if live is None else f'{live:,}'}  awaiting "
                            f"{ledger.outstanding:,}  p99 "
                            f"{'-' if p99 is None else f'{p99 * 1000:.1f} ms'}"
                            + (f"  faults {faults:,}" if faults else "")
                            + (f"  DUPLICATES {ledger.duplicates}" if ledger.duplicates else ""))
                    if self.tty:
                        self.out.write("\r\x1b[2K" + line)
                        self.out.flush()
                    elif tick % 5 == 0:
                        self.out.write(line + "\n")
                        self.out.flush()
            finally:
                if self.tty:
                    self.out.write("\n")
                    self.out.flush()

    async def _server_live(self, client: httpx.AsyncClient) -> int | None:
        run = self.run
        live: int | None = None
        if run.in_process is not None:
            live = len(run.in_process.router.actors)
        elif run.health_url:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                live = int((await client.get(f"{run.health_url}/healthz")).json()
                           ["live_actors"])
        if live is not None:
            run.server_live_peak = max(run.server_live_peak, live)
        return live


def experiment_figures(db: Path) -> dict[str, Any] | None:
    """The branches of the `--experiment` run's split, read from the server's store as
    `intercept report --experiment loadtest-ab` reads them (None: no store)."""
    import sqlite3

    from intercept.store.experiments import SplitRef, compare_experiment
    from intercept.store.returns import city_lookup

    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        found = compare_experiment(
            conn, EXPERIMENT, [SplitRef(SCENARIO_NAME, "loadtest_branch", ("a", "b"))],
            as_of=time.time(), city_of_number=city_lookup(conn))
    return {"name": EXPERIMENT, "branches": {
        arm.name: {"conversations": arm.conversations, "outcomes": arm.outcomes,
                   "length_mean": None if arm.length is None or arm.length.mean is None
                   else round(arm.length.mean, 2)}
        for arm in found.arms}}


def server_figures(run: LoadRun, *, folder: Path | None = None) -> dict[str, Any]:
    """What the run saw of the server: start-up, CPU share, memory, live conversations, the
    outbox by status."""
    server: dict[str, Any] = {"startup_s": _round(run.startup_seconds)}
    if run.server is not None:
        start, end = run.samples.get("start", {}), run.samples.get("end", {})
        if "cpu_seconds" in start and "cpu_seconds" in end:
            server["cpu_share_of_one_core"] = round(
                (end["cpu_seconds"] - start["cpu_seconds"]) / run.options.duration, 3)
            server["rss_mib_at_end"] = round(end["rss_mib"], 1)
        server["rss_mib_peak"] = round(run.server.peak_rss / 1024, 1)
        server["exit_status"] = run.server_exit
    server["live_conversations_peak"] = run.server_live_peak or None
    server["pauses"] = run.pauses
    server["live_conversations_at_end"] = run.server_live_at_end
    if run.db is not None:
        server["outbox"] = outbox_statuses(run.db, run.store_since)
    if folder is not None:
        server["folder"] = str(folder)
    return server


def own_processes(run: LoadRun) -> dict[str, Any]:
    """The server's and this process's share of a core over the load, and the bound (a run
    with everything but the server in this process)."""
    assert run.server is not None
    me = "load tester (SMSC and buyers)"
    return process_figures(
        {"server": run.server.pid, me: 0},
        {"server": run.samples.get("start", {}), me: run.samples.get("self_start", {})},
        {"server": run.samples.get("end", {}), me: run.samples.get("self_end", {})},
        run.options.duration)


def build_report(run: LoadRun, *, folder: Path | None = None) -> dict[str, Any]:
    """The run's figures and verdict."""
    options, ledger = run.options, run.ledger
    lost = ledger.lost()
    duration = options.duration
    per_behaviour: dict[str, dict[str, int]] = {}
    for behaviour, count in sorted(run.by_behaviour.items()):
        per_behaviour[behaviour] = {"buyers": count, "sent": 0, "answered": 0, "lost": 0}
    for expectation in ledger.expected.values():
        row = per_behaviour.setdefault(expectation.behaviour,
                                       {"buyers": 0, "sent": 0, "answered": 0, "lost": 0})
        row["sent"] += 1
        if expectation.answers:
            row["answered"] += 1
        elif expectation.kind != "none":
            row["lost"] += 1
    late_limit = options.reply_timeout
    errors = {"send_failed": ledger.send_failures}
    violations = {"after_optout": ledger.after_optout, "misrouted": ledger.misrouted,
                  "unexpected": ledger.unexpected}
    server = server_figures(run, folder=folder)
    server["warmup_first_reply_s"] = _round(run.warmup_seconds)
    experiment = experiment_figures(run.db) if options.experiment and run.db else None
    report = {
        "ok": not lost and ledger.duplicates == 0 and ledger.violations == 0,
        "transport": options.transport,
        "buyers": run.started,
        "duration_s": duration,
        "messages": {"in": ledger.sent, "out": ledger.received,
                     "in_per_s": round(ledger.sent / duration, 1),
                     "out_per_s": round(ledger.received / duration, 1),
                     "answered": ledger.answered, "warmup_replies": ledger.ignored_replies},
        "latency_ms": ledger.percentiles(),
        "latency_ms_after_ramp_up": ledger.percentiles(since=run.start_at + options.ramp_up),
        "lost": len(lost),
        "duplicates": ledger.duplicates,
        "late": ledger.late(late_limit),
        "violations": violations,
        "errors": errors,
        "outcomes": {f"{b}: {o}": n for (b, o), n in sorted(run.outcomes.items())},
        "behaviours": per_behaviour,
        "faults": dict(sorted(run.phones.faults_injected.items())),
        "network": run.phones.stats(),
        "server": server,
        "options": _options(run),
        **({"experiment": experiment} if experiment is not None else {}),
        **({"processes": own_processes(run)} if run.server is not None
           and "self_end" in run.samples else {}),
        "detail": {
            "duplicate_deliveries": ledger.duplicate_deliveries,
            "double_answers": ledger.double_answers,
            "extra_confirmations": ledger.extra_confirmations,
            "lost_examples": [f"#{e.buyer}.{e.n} ({e.behaviour}, {e.kind})" for e in lost[:5]],
            "examples": ledger.examples,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return report


def _options(run: LoadRun) -> dict[str, Any]:
    o = run.options
    return {"mix": o.mix, "ramp_up_s": o.ramp_up, "drain_s": o.drain, "think_s": list(o.think),
            "reply_timeout_s": o.reply_timeout, "faults": o.faults, "seed": o.seed,
            "numbers": len(o.ours) or o.numbers, "window": o.window,
            "target": o.target or ("in-process" if o.in_process else "subprocess")}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False)


def to_text(report: dict[str, Any]) -> str:
    """The report for people."""
    m, lat, server = report["messages"], report["latency_ms"], report["server"]
    steady = report["latency_ms_after_ramp_up"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    lines = [
        f"{report['transport']}: {report['buyers']:,} buyers over {report['duration_s']:.0f} s",
        f"  messages in   {m['in']:>9,}  ({m['in_per_s']:,.1f}/s)",
        f"  messages out  {m['out']:>9,}  ({m['out_per_s']:,.1f}/s)",
        f"  latency       p50 {ms(lat['p50'])}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}  "
        f"max {ms(lat['max'])}  (buyer message -> our reply at the network)",
        f"    after ramp-up p50 {ms(steady['p50'])}  p95 {ms(steady['p95'])}  "
        f"p99 {ms(steady['p99'])}  max {ms(steady['max'])}  (texts sent once every buyer "
        "had started)",
        f"  lost          {report['lost']:>9,}",
        f"  duplicates    {report['duplicates']:>9,}",
        f"  late          {report['late']:>9,}  (answered after the reply timeout)",
    ]
    bad = {k: v for k, v in {**report["violations"], **report["errors"]}.items() if v}
    lines.append(f"  violations/errors  {bad or 'none'}")
    if report["faults"]:
        lines.append(f"  faults injected    {report['faults']}")
    lines.append(f"  network            {report['network']}")
    lines.append("  behaviours:")
    for name, row in report["behaviours"].items():
        lines.append(f"    {name:<12} {row['buyers']:>7,} buyers  {row['sent']:>8,} sent  "
                     f"{row['answered']:>8,} answered  {row['lost']:>5,} lost")
    lines.append("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in report["outcomes"].items()))
    if "experiment" in report:
        branches = report["experiment"]["branches"]
        lines.append(f"  experiment {report['experiment']['name']}: " + ", ".join(
            f"{name} {row['conversations']:,} conversations" for name, row in branches.items())
            + " (intercept report --experiment for the intervals; --keep keeps the store)")
    shown = {k: v for k, v in server.items() if v is not None}
    lines.append(f"  server             {shown}")
    if "processes" in report:
        figures = report["processes"]
        apart = (f"{report['buyer_processes']} buyer processes" if "buyer_processes" in report
                 else "the SMSC and the buyers in one process")
        lines.append(f"  processes          {apart}; share of one core over the load "
                     f"{figures['cpu_share_of_one_core']}")
        lines.append(f"  bound              {figures['bound']}")
    detail = report["detail"]
    if report["lost"]:
        lines.append(f"  lost, e.g.         {detail['lost_examples']}")
    if report["duplicates"]:
        lines.append(f"  duplicates         deliveries {detail['duplicate_deliveries']}, "
                     f"double answers {detail['double_answers']}, extra confirmations "
                     f"{detail['extra_confirmations']}")
    lines.append("  verdict            " + ("OK: nothing lost, nothing twice" if report["ok"]
                                           else "FAILED"))
    return "\n".join(lines)
