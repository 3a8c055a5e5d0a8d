"""The load generator in separate processes: `intercept-loadtest --scenario ... --processes N`.

One process runs the simulated network (`loadtest.hub`: the SMSC simulator the server binds
to), N processes run the buyers (each a share of `--buyers` and its own numbers), the server
runs in its own (`intercept serve`), and this process orchestrates: it writes the config,
starts them, plays the warm-up conversation, starts the buyers together, reads every
process's CPU time from /proc at the start and the end of the load, gathers the buyer
processes' ledgers (`ScenarioLedger.summary`), and builds one report. The report's
`processes` block gives each process's share of one core over the load: one near 1.0 is what
bounded the run (on a 2-core machine, the server and the generator together cannot go past 2).

A buyer process is `python -m loadtest.shards --child SPEC` (SPEC: JSON); it prints "ready"
once connected to the hub, waits for "start" on stdin, runs its buyers, drains, and prints its
ledger's summary as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import trio

from intercept.foundation import collector
from loadtest import pauses
from loadtest.behaviours import assign
from loadtest.corpus import Corpus
from loadtest.hub import GENERATOR_SWEEP, RemotePhones
from loadtest.ledger import Ledger
from loadtest.run import _drive, _server_live, _start_server, _stop_server
from loadtest.scaled import ScaledScenario
from loadtest.scenario_ledger import ScenarioLedger
from loadtest.scenario_run import ScenarioBuyers, drive, fit_bound, prepare, warm_up
from loadtest.state import LoadRun, Options, process_figures
from loadtest.target import CITY_LINK, our_numbers, proc_sample

START_TIMEOUT = 60.0


class _Network:
    """What the report reads of the network (the hub's counters) in the parent."""

    name = "smpp"

    def __init__(self) -> None:
        self.network: dict[str, Any] = {}

    @property
    def faults_injected(self) -> dict[str, int]:
        return dict(self.network.get("faults", {}))

    def stats(self) -> dict[str, Any]:
        return {k: v for k, v in self.network.items() if k != "faults"}


async def _line(stream: trio.abc.ReceiveStream, buffer: bytearray, limit: int = 1 << 26
                ) -> str:
    """The next line from a child's stdout ('' at its end)."""
    while b"\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            line, buffer[:] = bytes(buffer), b""
            return line.decode(errors="replace")
        buffer += data
        if len(buffer) > limit:
            raise RuntimeError("a buyer process wrote more than 64 MiB on one line")
    at = buffer.index(b"\n")
    line = bytes(buffer[:at])
    del buffer[:at + 1]
    return line.decode(errors="replace")


async def run_sharded(options: Options, *, progress: TextIO | None = sys.stderr
                      ) -> dict[str, Any]:
    """A run (a scenario, or the echo) with the network and the buyers in processes of their
    own."""
    from loadtest.scenario_report import build_scenario_report

    if options.transport != "smpp":
        raise ValueError("--processes runs over SMPP only (the SMSC simulator is the process "
                         "the buyers share); drop --transport provider")
    if options.scenario:
        Corpus.load(options.corpus)  # refuse a broken corpus before starting anything
    ours = options.ours or our_numbers(options.numbers)
    if "two_numbers" in options.mix and options.mix["two_numbers"] > 0 and len(ours) < 2:
        raise ValueError("the two_numbers behaviour needs at least 2 of our numbers")
    processes = max(1, options.processes)
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="intercept-loadtest-")) if options.keep else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="intercept-loadtest-")))
        scaled = prepare(options, folder) if options.scenario else \
            ScaledScenario(name="loadtest-echo", merge=0.0, busy_max=0.0, files=())
        if options.scenario:  # the echo's reply timeout is always given (default 10 s)
            fit_bound(options, scaled)
        ledger = ScenarioLedger(bound=options.reply_timeout, marker=CITY_LINK,
                                exact_keys=False)
        remote = RemotePhones(ledger.received_reply)
        run = LoadRun(options, remote, ledger)  # type: ignore[arg-type]
        run.scaled = scaled
        hub = await trio.lowlevel.open_process(
            [sys.executable, "-m", "loadtest.hub", "--faults-json", json.dumps(options.faults),
             "--seed", str(options.seed), "--system-id", options.system_id,
             "--password", options.password, "--window", str(options.smsc_window)]
            + (["--rate-cap", str(options.rate_cap)] if options.rate_cap else []),
            stdout=subprocess.PIPE)
        children: list[trio.Process] = []
        summaries: list[dict[str, Any]] = []
        pids: dict[str, int] = {"network (SMSC)": hub.pid}
        try:
            assert hub.stdout is not None
            with trio.fail_after(START_TIMEOUT):
                ready = await _line(hub.stdout, bytearray())
            fields = dict(part.split("=") for part in ready.split()[2:])
            smpp_port, hub_port = int(fields["smpp"]), int(fields["hub"])
            async with trio.open_nursery() as nursery:
                await nursery.start(remote.connect, hub_port)
                try:
                    await _start_server(run, nursery, folder, ours, smpp_port)
                    if run.server is not None:
                        pids["server"] = run.server.pid
                    run.warmup_seconds = await warm_up(run, ours[0])
                    children = await _start_children(run, scaled, ours, hub_port, processes)
                    for i, child in enumerate(children):
                        pids[f"buyers {i + 1}"] = child.pid
                    pids["orchestrator"] = os.getpid()
                    summaries = await _run_children(run, children, pids, progress)
                    run.phones = _Network()  # type: ignore[assignment]
                    run.phones.network = await remote.fetch_stats()  # type: ignore[attr-defined]
                finally:
                    with trio.CancelScope(shield=True):
                        await _stop_server(run)
                    nursery.cancel_scope.cancel()
        finally:
            for process in [*children, hub]:
                with contextlib.suppress(OSError):
                    process.kill()
        if options.scenario:
            ledger.merge(summaries)
            conversations = sum(int(s["conversations"]) for s in summaries)
            report = build_scenario_report(run, conversations,
                                           folder=folder if options.keep else None)
        else:
            report = merge_echo_reports(summaries, run, folder if options.keep else None)
        report["processes"] = run.process_figures
        report["buyer_processes"] = processes
        return report


async def _start_children(run: LoadRun, scaled: ScaledScenario, ours: list[str],
                          hub_port: int, processes: int) -> list[trio.Process]:
    """Start the buyer processes and wait until each is connected to the hub."""
    options = run.options
    children = []
    for shard in range(processes):
        share = options.buyers // processes + (1 if shard < options.buyers % processes else 0)
        spec = {"options": {**_plain(options), "buyers": share}, "shard": shard,
                "total_buyers": options.buyers,
                "shards": processes, "hub_port": hub_port, "health": run.health_url,
                "ours": ours, "scaled": {**asdict(scaled), "files": []},
                "bound": options.reply_timeout}
        children.append(await trio.lowlevel.open_process(
            [sys.executable, "-m", "loadtest.shards", "--child", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    with trio.fail_after(START_TIMEOUT):
        for child in children:
            assert child.stdout is not None
            line = await _line(child.stdout, bytearray())
            if line.strip() != "ready":
                raise RuntimeError(f"a buyer process did not start: {line[:200]!r}")
    return children


async def _run_children(run: LoadRun, children: list[trio.Process], pids: dict[str, int],
                        progress: TextIO | None) -> list[dict[str, Any]]:
    """Start the buyers together, sample every process over the load, gather the ledgers."""
    options = run.options
    for child in children:
        assert child.stdin is not None
        await child.stdin.send_all(b"start\n")
    started = trio.current_time()
    start = {name: proc_sample(pid) for name, pid in pids.items()}
    pauses_at_start = None if run.health_url is None else await pauses.read(run.health_url)
    if progress is not None:
        print(f"{len(children)} buyer processes started; load for {options.duration:g} s",
              file=progress, flush=True)
    await trio.sleep(options.duration)
    end = {name: proc_sample(pid) for name, pid in pids.items()}
    if run.health_url is not None:
        run.pauses = pauses.figures(pauses_at_start, await pauses.read(run.health_url))
        run.server_live_at_end = await _server_live(run)
    run.samples = {"start": start.get("server", {}), "end": end.get("server", {})}
    run.process_figures = process_figures(pids, start, end, trio.current_time() - started)
    summaries = []
    with trio.fail_after(options.drain + options.settle + START_TIMEOUT):
        for child in children:
            assert child.stdout is not None
            line = await _line(child.stdout, bytearray())
            await child.wait()
            try:
                summaries.append(json.loads(line))
            except ValueError:
                raise RuntimeError(f"a buyer process ended without its figures (status "
                                   f"{child.returncode}): {line[:200]!r}") from None
    return summaries


def _plain(options: Options) -> dict[str, Any]:
    """The options a buyer process needs, as JSON-able data."""
    data = {k: v for k, v in vars(options).items()
            if k not in ("server_extra", "corpus", "listen", "profile_server")}
    data["think"] = list(options.think)
    data["corpus"] = str(options.corpus) if options.corpus else None
    return data


async def child(spec: dict[str, Any], out: TextIO) -> None:
    """A buyer process: connect, say ready, wait for start, run, drain, print the figures."""
    raw = dict(spec["options"])
    corpus_path = raw.pop("corpus")
    options = Options(**raw)
    options.think = (float(raw["think"][0]), float(raw["think"][1]))
    options.corpus = Path(corpus_path) if corpus_path else None
    options.reply_timeout = float(spec["bound"])
    if not options.scenario:
        await echo_child(spec, options, out)
        return
    ledger = ScenarioLedger(bound=options.reply_timeout, marker=CITY_LINK, exact_keys=False)
    phones = RemotePhones(ledger.received_reply)
    run = LoadRun(options, phones, ledger)  # type: ignore[arg-type]
    run.scaled = ScaledScenario(**{**spec["scaled"], "files": ()})
    run.health_url = spec["health"]
    buyers = ScenarioBuyers(run, Corpus.load(options.corpus), list(spec["ours"]),
                            shard=int(spec["shard"]), shards=int(spec["shards"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(phones.connect, int(spec["hub_port"])))
        print("ready", file=out, flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        await _line(stdin, bytearray())
        await drive(run, buyers, None)
        nursery.cancel_scope.cancel()
    ledger.finish()
    summary = ledger.summary(run.wall_offset)
    summary["conversations"] = buyers.conversations
    summary["ramp_up_end"] = run.start_at + options.ramp_up + run.wall_offset
    print(json.dumps(summary), file=out, flush=True)


async def echo_child(spec: dict[str, Any], options: Options, out: TextIO) -> None:
    """A buyer process of an echo run: its share of the buyers (every `shards`-th), with the
    echo's exact ledger; prints its report and its latencies."""
    from loadtest.report import build_report

    ledger = Ledger(confirmation=options.confirmation)
    phones = RemotePhones(ledger.received_reply)
    run = LoadRun(options, phones, ledger)  # type: ignore[arg-type]
    run.health_url = spec["health"]
    behaviours = assign(options.mix, int(spec["total_buyers"]))
    indices = range(int(spec["shard"]), len(behaviours), int(spec["shards"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(phones.connect, int(spec["hub_port"])))
        print("ready", file=out, flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        await _line(stdin, bytearray())
        await _drive(run, behaviours, list(spec["ours"]), None, indices=indices)
        nursery.cancel_scope.cancel()
    report = build_report(run)
    print(json.dumps({"report": report, "latencies": list(ledger.latencies),
                      "latencies_after_ramp_up": ledger.latencies_since(
                          run.start_at + options.ramp_up),
                      "conversations": run.started}), file=out, flush=True)


def merge_echo_reports(parts: list[dict[str, Any]], run: LoadRun, folder: Path | None
                       ) -> dict[str, Any]:
    """One echo report from the buyer processes' reports: counts summed, latencies pooled,
    the network's and the server's figures from this process."""
    from loadtest.ledger import percentiles
    from loadtest.report import server_figures

    reports = [part["report"] for part in parts]
    if not reports:
        raise RuntimeError("no buyer process reported")
    merged = json.loads(json.dumps(reports[0]))

    def add(into: dict[str, Any], other: dict[str, Any]) -> None:
        for key, value in other.items():
            if isinstance(value, bool) or key.endswith("_per_s"):
                continue
            if isinstance(value, int | float) and isinstance(into.get(key), int | float):
                into[key] += value
            elif isinstance(value, dict):
                add(into.setdefault(key, {}), value)
            elif key not in into:
                into[key] = value

    for report in reports[1:]:
        for key in ("buyers", "lost", "duplicates", "late"):
            merged[key] += report[key]
        for key in ("messages", "violations", "errors", "outcomes", "behaviours"):
            add(merged[key], report[key])
        detail = merged["detail"]
        for key in ("duplicate_deliveries", "double_answers", "extra_confirmations"):
            detail[key] += report["detail"][key]
        detail["lost_examples"] = (detail["lost_examples"]
                                   + report["detail"]["lost_examples"])[:5]
        for what, found in report["detail"]["examples"].items():
            detail["examples"][what] = (detail["examples"].get(what, []) + found)[:5]
    duration = run.options.duration
    messages = merged["messages"]
    messages["in_per_s"] = round(messages["in"] / duration, 1)
    messages["out_per_s"] = round(messages["out"] / duration, 1)
    merged["latency_ms"] = percentiles([x for part in parts for x in part["latencies"]])
    merged["latency_ms_after_ramp_up"] = percentiles(
        [x for part in parts for x in part["latencies_after_ramp_up"]])
    merged["faults"] = run.phones.faults_injected
    merged["network"] = run.phones.stats()
    merged["server"] = {**server_figures(run, folder=folder),
                        "warmup_first_reply_s": None if run.warmup_seconds is None
                        else round(run.warmup_seconds, 3)}
    merged["options"]["target"] = "subprocess"
    merged["ok"] = (merged["lost"] == 0 and merged["duplicates"] == 0
                    and not any(merged["violations"].values()))
    return merged


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--child":
        sys.exit("usage: python -m loadtest.shards --child SPEC (started by "
                 "intercept-loadtest --processes N)")
    collector.tune()
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write on the line the parent reads
    spec = json.loads(args[1])
    trio.run(_frozen_child, spec, out)


async def _frozen_child(spec: dict[str, Any], out: TextIO) -> None:
    """`child`, freezing what survives collections as the server does (its tens of thousands
    of buyer tasks would otherwise stall it in the collector, and the latencies with it)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collector.keep_frozen, GENERATOR_SWEEP)
        await child(spec, out)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    main()
