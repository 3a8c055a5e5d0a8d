"""The report of a scenario run (`intercept-loadtest --scenario`): what was measured, the
outcomes, and every accounting violation (`loadtest.scenario_ledger`).

Latency, two figures:

- `first_reply_ms`: from the buyer's text that closed a step (the last fragment) to the first
  reply reaching the network. It includes what the scenario asks for: the merge window, the
  human-like reply delay and any "busy" pause, all scaled by `--delay-scale`.
- `beyond_schedule_ms`: the same minus the scaled merge window and minus the delay the server
  scheduled for that reply (its outbox row's `not_before - created_at`, read from the store
  after the run): the time the server and the network added. Only when the store can be read:
  the load tester started the server, or `--store` names a running server's (`--target`),
  whose rows from before the run are left out; openings (stepped at once, no merge window) and
  opt-out confirmations are left out of it.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.ledger import percentiles
from loadtest.report import own_processes, server_figures
from loadtest.scenario_ledger import ScenarioLedger
from loadtest.target import read_store

if TYPE_CHECKING:
    from loadtest.state import LoadRun

SCENARIO_REPORT_KEYS = ("ok", "mode", "scenario", "transport", "buyers", "conversations",
                        "duration_s", "messages", "latency_ms", "violations", "duplicates",
                        "outcomes", "store_outcomes", "network", "server", "options")
SENT = ("sending", "sent", "delivered", "unknown", "failed")


def store_rows(db: Path, since: float = 0.0) -> list[tuple[str, str, str, str, float, float]]:
    """Outbox rows that left (or may have left) the server: id, our, their, body,
    not_before, created_at; only those created from `since` (Unix time) on."""
    if not db.exists():
        return []
    marks = ",".join("?" * len(SENT))
    return read_store(db, "SELECT id, our_number, their_number, body, not_before, created_at "
                      f"FROM outbox WHERE status IN ({marks}) AND created_at >= ?",
                      (*SENT, since))


def store_outcomes(db: Path | None, since: float = 0.0) -> dict[str, int]:
    """Conversations (created from `since` on) by status and outcome, as the store has them
    after the run."""
    if db is None or not db.exists():
        return {}
    rows = read_store(db, "SELECT status, coalesce(outcome, ''), count(*) FROM conversations "
                      "WHERE coalesce(created_at, 0) >= ? GROUP BY 1, 2 ORDER BY 1, 2",
                      (since,))
    return {f"{status}/{outcome}" if outcome else status: n for status, outcome, n in rows}


def beyond_schedule(run: LoadRun, rows: list[tuple[str, str, str, str, float, float]], *,
                    since: float | None = None) -> list[float]:
    """Each first reply's latency minus the merge window and its scheduled delay (seconds);
    with `since` (wall-clock time), only for texts sent from then on."""
    ledger: ScenarioLedger = run.ledger  # type: ignore[assignment]
    merge = run.scaled.merge if run.scaled is not None else 0.0
    by_id = {row[0]: row for row in rows}
    by_text: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _, our, their, body, not_before, created_at in rows:
        by_text[f"{our}>{their}:{body}"].append((not_before, created_at))
    for found in by_text.values():
        found.sort()
    out = []
    for key, latency, wall_at, left_out in ledger.first_reply_rows(run.wall_offset):
        if left_out or (since is not None and wall_at - latency < since):
            continue
        row = by_id.get(key)
        if row is not None:
            not_before, created_at = row[4], row[5]
        else:
            # SMPP: the latest row with this text scheduled before the reply reached us
            found = by_text.get(key, [])
            at = bisect.bisect_right(found, (wall_at + 0.05, float("inf")))
            if not at:
                continue
            not_before, created_at = found[at - 1]
        scheduled = max(0.0, not_before - created_at)
        out.append(max(0.0, latency - merge - scheduled))
    return out


def ramp_up_end(run: LoadRun) -> float:
    """The wall-clock time by which every buyer had started (the last buyer process's, when
    they ran in processes of their own)."""
    merged = getattr(run.ledger, "merged", None)
    if merged is not None and merged.get("ramp_up_end"):
        return float(merged["ramp_up_end"])
    return run.start_at + run.options.ramp_up + run.wall_offset


def build_scenario_report(run: LoadRun, conversations: int, *, folder: Path | None = None,
                          next_conversation: int | None = None) -> dict[str, Any]:
    """The run's figures and verdict (`conversations`: how many the buyers started;
    `next_conversation`: where a next run against the same store goes on)."""
    options = run.options
    ledger: ScenarioLedger = run.ledger  # type: ignore[assignment]
    since = run.store_since
    rows = store_rows(run.db, since) if run.db is not None else []
    if not ledger.exact_keys:
        ledger.reconcile_repeats(Counter(f"{our}>{their}:{body}"
                                         for _, our, their, body, _, _ in rows))
    beyond = beyond_schedule(run, rows) if rows else []
    steady = beyond_schedule(run, rows, since=ramp_up_end(run)) if rows else []
    violations = ledger.violations()
    duration = options.duration
    outcomes = ledger.outcomes()
    totals = Counter()
    for row in outcomes.values():
        totals.update(row)
    verified = run.db is not None or ledger.exact_keys
    ok = (not any(violations.values()) and ledger.duplicates == 0
          and ledger.send_failures == 0)
    scaled = run.scaled
    figures: dict[str, Any] = {
        "ok": ok,
        "mode": "scenario",
        "scenario": scaled.name if scaled is not None else options.scenario,
        "transport": options.transport,
        "buyers": options.buyers,
        "conversations": conversations,
        "duration_s": duration,
        "messages": {"texts_in": ledger.sent, "replies_out": ledger.received,
                     "texts_in_per_s": round(ledger.sent / duration, 1),
                     "replies_out_per_s": round(ledger.received / duration, 1),
                     "answered_texts": ledger.answered,
                     "replies_per_text": round(ledger.received / ledger.sent, 2)
                     if ledger.sent else None,
                     "unsolicited_replies": ledger.unsolicited,
                     "crossed_the_end": ledger.crossed_end,
                     "warmup_replies": ledger.ignored_replies,
                     "earlier_run_replies": ledger.earlier_replies},
        "latency_ms": {
            "first_reply": percentiles(ledger.latencies),
            "beyond_schedule": percentiles(beyond),
            "beyond_schedule_after_ramp_up": percentiles(steady),
            "basis": (f"first_reply: buyer text -> first reply at the network, including the "
                      f"merge window ({scaled.merge if scaled else 0:g} s) and the reply delays "
                      f"scaled by {options.delay_scale:g}; beyond_schedule: the same minus the "
                      "merge window and the delay the server scheduled (store), openings and "
                      "opt-out confirmations left out; after_ramp_up: for the texts sent once "
                      "every buyer had started"),
            "bound_s": ledger.bound},
        "violations": violations,
        "duplicates": ledger.duplicates,
        "duplicates_verified": verified,
        "errors": {"send_failed": ledger.send_failures},
        "outcomes": {"total": dict(totals), "by_path": outcomes,
                     "by_word": {f"{p}: {o}": n for (p, o), n in sorted(run.outcomes.items())}},
        "store_outcomes": store_outcomes(run.db, since),
        "faults": dict(sorted(run.phones.faults_injected.items())),
        "network": run.phones.stats(),
        "server": {**server_figures(run, folder=folder),
                   "warmup_first_reply_s": None if run.warmup_seconds is None
                   else round(run.warmup_seconds, 3)},
        "options": {"delay_scale": options.delay_scale, "ramp_up_s": options.ramp_up,
                    "drain_s": options.drain, "seed": options.seed,
                    "numbers": len(options.ours) or options.numbers,
                    "corpus": str(options.corpus) if options.corpus else "shipped",
                    "target": options.target or ("in-process" if options.in_process
                                                 else "subprocess")},
        "detail": {"repeats_of_one_text": ledger.repeats, "examples": ledger.examples},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if options.target and next_conversation is not None:
        figures["next_conversation"] = next_conversation
    if run.process_figures is not None:
        figures["processes"] = run.process_figures
    elif run.server is not None and "self_end" in run.samples:
        figures["processes"] = own_processes(run)
    return figures


def scenario_text(report: dict[str, Any]) -> str:
    """The report for people."""
    m, lat = report["messages"], report["latency_ms"]

    def ms(q: dict[str, float | None]) -> str:
        return "  ".join(f"{k} {'-' if v is None else f'{v:,.1f} ms'}" for k, v in q.items())

    total = report["outcomes"]["total"]
    lines = [
        f"{report['scenario']} over {report['transport']}: {report['buyers']:,} buyers, "
        f"{report['conversations']:,} conversations in {report['duration_s']:.0f} s",
        f"  texts in      {m['texts_in']:>9,}  ({m['texts_in_per_s']:,.1f}/s)",
        f"  replies out   {m['replies_out']:>9,}  ({m['replies_out_per_s']:,.1f}/s, "
        f"{m['replies_per_text']} per text, {m['unsolicited_replies']:,} beyond the first)",
        f"  first reply   {ms(lat['first_reply'])}",
        f"  beyond sched. {ms(lat['beyond_schedule'])}",
        f"    after ramp-up {ms(lat['beyond_schedule_after_ramp_up'])}",
        f"                ({lat['basis']}; bound {lat['bound_s']:g} s)",
        f"  outcomes      deterred {total.get('deterred', 0):,}, opted out "
        f"{total.get('opted_out', 0):,}, open {total.get('open', 0):,}, cut short by the end "
        f"{total.get('cut_short', 0):,}",
        f"  in the store  {report['store_outcomes'] or '-'}",
        f"  duplicates    {report['duplicates']:>9,}"
        + ("" if report["duplicates_verified"] else "  (SMPP without the store: not checked)"),
    ]
    bad = {k: v for k, v in {**report["violations"], **report["errors"]}.items() if v}
    lines.append(f"  violations    {bad or 'none'}")
    if report["faults"]:
        lines.append(f"  faults        {report['faults']}")
    lines.append(f"  network       {report['network']}")
    shown = {k: v for k, v in report["server"].items() if v is not None}
    lines.append(f"  server        {shown}")
    if "processes" in report:
        figures = report["processes"]
        apart = (f"{report['buyer_processes']} buyer processes" if "buyer_processes" in report
                 else "the SMSC and the buyers in one process")
        lines.append(f"  processes     {apart}; share of one core over the load "
                     f"{figures['cpu_share_of_one_core']}; RSS MiB {figures['rss_mib_at_end']}")
        lines.append(f"  bound         {figures['bound']}")
    if report["detail"]["examples"]:
        lines.append(f"  examples      {report['detail']['examples']}")
    if m.get("earlier_run_replies"):
        lines.append(f"  earlier runs  {m['earlier_run_replies']:,} replies to phones of an "
                     "earlier run's conversations (left out of the accounting)")
    if "next_conversation" in report:
        lines.append(f"  next run      against the same store: --first-conversation "
                     f"{report['next_conversation']}")
    lines.append("  verdict       " + ("OK: every text answered within the bound, nothing "
                                       "twice, nothing after an opt-out or an end"
                                       if report["ok"] else "FAILED"))
    return "\n".join(lines)
