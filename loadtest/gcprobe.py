"""Memory of a live conversation, object by object, and what the garbage collector pays for it.

    python -m loadtest.gcprobe --conversations 10000            # live actors: objects, bytes
    python -m loadtest.gcprobe --conversations 10000 --messages 20000 --threshold 50000,20,20
    python -m loadtest.gcprobe --conversations 20000 --turns 2 --freeze  # frozen once live
    python -m loadtest.gcprobe --conversations 2000 --cycles 8   # start/hibernate/wake/end

A real `Server` (shipped config and scenarios, sim gateway, delays off, a temporary SQLite
store, no HTTP) in this process. Buyers text the personas; a conversation is *live* once it has
answered its first text and its actor task waits for the next. The report gives, per live
conversation: the collector's tracked objects (`gc.get_objects()`), by type; the bytes
allocated, by source line (`tracemalloc`, measured on a second batch of conversations, since
tracing inflates memory); the RSS growth (first batch, untraced); and the time of a full and of
a middle (`gc.collect(1)`) collection with those conversations live. Every count is
deterministic for a given N; only the times and RSS depend on the machine.

`--messages M` then has the live conversations text M more messages (closed loop) and counts
the collections each generation made and their pauses, per 10,000 messages: what
`--threshold` is chosen from. `--cycles K` instead repeats K times: N new conversations start,
hibernate (`--hibernate-after`), wake, end; tracked objects and RSS after each cycle must stay
flat. `--freeze-each-cycle` calls `gc.freeze()` in every cycle while its conversations are live,
to see whether objects frozen while live leak once they die.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from intercept.config import load_config
from intercept.engine.durations import Duration
from intercept.foundation import collector
from intercept.foundation.resources import bundled_root
from intercept.gateways import OutboundMessage, SimGateway
from intercept.runtime.lookups import number_metadata
from intercept.server import Server

OPENING = "hey is this available"
LINES = ["how much for an hour", "ok tonight at 9pm", "my place is fine", "hello?", "u there"]
ENDING = "i'll find you"
"""An abuse line: the shipped scenario answers with the deterrence message and ends."""


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tracked_types() -> Counter[str]:
    """The collector's tracked objects by type name (frozen objects are not among them)."""
    return Counter(type(o).__name__ for o in gc.get_objects())


def per_conversation_types(before: Counter[str], after: Counter[str], n: int,
                           top: int) -> list[dict[str, Any]]:
    diff = after.copy()
    diff.subtract(before)
    rows = sorted(((t, c) for t, c in diff.items() if c), key=lambda tc: -abs(tc[1]))
    return [{"type": t, "per_conversation": round(c / n, 2), "total": c} for t, c in rows[:top]]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    here = str(Path(__file__).resolve().parent.parent) + "/"
    return filename.removeprefix(here)


def per_conversation_bytes(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int,
                           top: int) -> tuple[float, list[dict[str, Any]]]:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    total = sum(s.size_diff for s in stats)
    stats.sort(key=lambda s: -abs(s.size_diff))
    rows = [{"line": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
             "bytes_per_conversation": round(s.size_diff / n, 1),
             "blocks_per_conversation": round(s.count_diff / n, 2)} for s in stats[:top]]
    return total / n, rows


def collection_times(runs: int = 3) -> dict[str, float]:
    """Median milliseconds of a full and of a middle collection, as things stand."""
    full, middle = [], []
    for _ in range(runs):
        started = time.perf_counter()
        gc.collect()
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        gc.collect(1)
        middle.append(time.perf_counter() - started)
    return {"full_ms": round(statistics.median(full) * 1000, 2),
            "middle_ms": round(statistics.median(middle) * 1000, 2)}


class Buyers:
    """Simulated buyers: `text` returns once the persona has answered."""

    def __init__(self, gateway: SimGateway, ours: list[str]):
        self.gateway = gateway
        self.ours = ours
        self.waiting: dict[str, trio.Event] = {}
        self.replies = 0
        gateway.subscribe(self._deliver)

    def _deliver(self, message: OutboundMessage) -> None:
        self.replies += 1
        event = self.waiting.pop(message.their_number, None)
        if event is not None:
            event.set()

    async def text(self, i: int, line: str) -> None:
        their = f"+1{300 + i // 10_000_000 % 600:03d}{i % 10_000_000:07d}"
        event = self.waiting[their] = trio.Event()
        await self.gateway.inject(their_number=their, our_number=self.ours[i % len(self.ours)],
                                  text=line)
        await event.wait()

    async def all(self, first: int, count: int, line: str | list[str],
                  concurrency: int = 2_000) -> None:
        """Buyers first..first+count-1 each text once, `concurrency` at a time (a few worker
        tasks, not a task per buyer: the probe's own objects stay few)."""
        todo = iter(range(first, first + count))

        async def worker() -> None:
            for i in todo:
                await self.text(i, line if isinstance(line, str) else line[i % len(line)])

        async with trio.open_nursery() as nursery:
            for _ in range(min(concurrency, count)):
                nursery.start_soon(worker)


class _Pauses:
    """Collections made and their pauses, by generation (a `gc.callbacks` entry)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.worst = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation, took = info["generation"], time.perf_counter() - self._started
        self.count[generation] += 1
        self.seconds[generation] += took
        self.worst[generation] = max(self.worst[generation], took)

    def totals(self) -> dict[str, Any]:
        return {f"gen{g}": {"collections": self.count[g],
                            "paused_ms": round(self.seconds[g] * 1000, 1),
                            "worst_ms": round(self.worst[g] * 1000, 2)} for g in range(3)}

    def report(self, messages: int) -> dict[str, Any]:
        per = 10_000 / max(messages, 1)
        return {f"gen{g}": {"collections_per_10k_messages": round(self.count[g] * per, 2),
                            "pause_ms_per_10k_messages": round(self.seconds[g] * per * 1000, 1),
                            "worst_ms": round(self.worst[g] * 1000, 2)} for g in range(3)}


def _server(store: Path, hibernate_after: float) -> tuple[Server, SimGateway, list[str]]:
    config = load_config(bundled_root() / "config" / "intercept.toml")
    config.runtime.hibernate_after = Duration.parse(f"{hibernate_after}s")  # type: ignore[misc]
    gateway = SimGateway(receipts=False)
    server = Server(config, gateway=gateway, store_path=store, fast=True, http=False)
    return server, gateway, [n.number for n in config.numbers]


async def _quiet(server: Server) -> None:
    """Wait until the sender has nothing queued and the writer nothing pending."""
    while len(server.sender):
        await trio.sleep(0.01)
    await trio.sleep(0.05)


async def live_probe(n: int, store: Path, *, messages: int, top: int, trace: bool,
                     freeze_live: bool = False) -> dict[str, Any]:
    server, gateway, ours = _server(store, hibernate_after=3600)
    buyers = Buyers(gateway, ours)
    report: dict[str, Any] = {"conversations": n, "thresholds": list(gc.get_threshold())}
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        collector.freeze()  # as `intercept serve` does once started
        await buyers.all(10_000_000 - 1, 1, OPENING)  # warm: first step, lookups, caches
        await _quiet(server)
        gc.collect()
        freeze_before = gc.get_freeze_count()
        types_before, rss_before = tracked_types(), rss_bytes()
        opening = _Pauses()
        gc.callbacks.append(opening)
        try:
            await buyers.all(0, n, OPENING)
        finally:
            gc.callbacks.remove(opening)
        report["collections_while_opening"] = opening.totals()
        await _quiet(server)
        gc.collect()
        live = len(server.router.actors) - 1
        types_after, rss_after = tracked_types(), rss_bytes()
        if gc.get_freeze_count() > freeze_before:  # (frozen objects that die leave the count)
            report["warning"] = "objects were frozen during the measure: counts are low"
        report["live"] = live
        report["tracked_objects_per_conversation"] = round(
            (sum(types_after.values()) - sum(types_before.values())) / max(live, 1), 2)
        report["types"] = per_conversation_types(types_before, types_after, max(live, 1), top)
        report["rss_bytes_per_conversation"] = round((rss_after - rss_before) / max(live, 1))
        report["rss_mib"] = {"before": round(rss_before / 2**20, 1),
                             "with_n_live": round(rss_after / 2**20, 1)}
        report["tracked_objects_total"] = sum(types_after.values())
        report["frozen_objects"] = gc.get_freeze_count()
        report["collection_with_n_live"] = collection_times()
        if freeze_live:  # as a periodic freeze would, once these conversations are live
            report["frozen_live_objects"] = collector.freeze()
            report["collection_with_n_live_frozen"] = collection_times()
        if trace:
            tracemalloc.start()
            gc.collect()
            snapshot_before = tracemalloc.take_snapshot()
            await buyers.all(n, n, OPENING)
            await _quiet(server)
            gc.collect()
            snapshot_after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            traced = len(server.router.actors) - 1 - live
            total, rows = per_conversation_bytes(snapshot_before, snapshot_after,
                                                 max(traced, 1), top)
            report["traced_bytes_per_conversation"] = round(total)
            report["bytes_by_line"] = rows
        if messages:
            pauses = _Pauses()
            gc.callbacks.append(pauses)
            started = time.perf_counter()
            sent = 0
            try:
                while sent < messages:
                    batch = min(n, messages - sent)
                    await buyers.all(0, batch, LINES[(sent // n) % len(LINES)])
                    sent += batch
            finally:
                gc.callbacks.remove(pauses)
            report["messages"] = sent
            report["messages_seconds"] = round(time.perf_counter() - started, 2)
            report["collections"] = pauses.report(sent)
        server.stop()
    return report


def _ended(server: Server) -> int:
    """Conversations ended so far (all outcomes), from the server's metrics."""
    return int(sum(sample.value for metric in server.metrics.conversations_ended.collect()
                   for sample in metric.samples if sample.name.endswith("_total")))


async def cycle_probe(n: int, store: Path, *, cycles: int, hibernate_after: float,
                      freeze_each_cycle: bool, top: int) -> dict[str, Any]:
    server, gateway, ours = _server(store, hibernate_after=hibernate_after)
    buyers = Buyers(gateway, ours)
    router = server.router
    rows: list[dict[str, Any]] = []
    types_first: Counter[str] = Counter()
    types_last: Counter[str] = Counter()

    async def idle() -> None:
        await _quiet(server)
        while router.actors:
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        collector.freeze()  # as `intercept serve` does once started
        for cycle in range(cycles):
            first = cycle * n
            await buyers.all(first, n, OPENING)      # start
            if freeze_each_cycle:                    # with this cycle's actors live
                gc.freeze()
            await idle()                             # hibernate
            await buyers.all(first, n, LINES[0])     # wake
            await buyers.all(first, n, ENDING)       # end (deterrence)
            await idle()
            # bounded caches fill with every new number until their bound: cleared here so
            # that the figure shows what outlives a conversation, not a cache filling up
            number_metadata.cache_clear()
            server.store._cache.forget()  # the writer's (our, their) -> id map: 200,000 entries
            gc.collect()
            types = tracked_types()
            if cycle == 1:
                types_first = types
            types_last = types
            ended = _ended(server)
            rows.append({"cycle": cycle + 1, "ended": ended,
                         "tracked_objects": sum(types.values()),
                         "frozen_objects": gc.get_freeze_count(),
                         "rss_mib": round(rss_bytes() / 2**20, 1)})
        server.stop()
    report: dict[str, Any] = {"conversations_per_cycle": n, "cycles": rows,
                              "freeze_each_cycle": freeze_each_cycle}
    if cycles >= 3:
        span = cycles - 2
        report["growth_per_cycle_after_warmup"] = {
            "tracked_objects": round((rows[-1]["tracked_objects"] - rows[1]["tracked_objects"])
                                     / span, 1),
            "frozen_objects": round((rows[-1]["frozen_objects"] - rows[1]["frozen_objects"])
                                    / span, 1),
            "rss_mib": round((rows[-1]["rss_mib"] - rows[1]["rss_mib"]) / span, 2)}
        report["types_growing"] = per_conversation_types(types_first, types_last, span, top)
    return report


def _print(report: dict[str, Any]) -> None:
    if "cycles" in report:
        print(f"{report['conversations_per_cycle']:,} conversations per cycle "
              f"(start, hibernate, wake, end); freeze after each cycle: "
              f"{report['freeze_each_cycle']}")
        for row in report["cycles"]:
            print(f"  cycle {row['cycle']}: {row['ended']:,} ended in all, "
                  f"{row['tracked_objects']:,} tracked, "
                  f"{row['frozen_objects']:,} frozen, RSS {row['rss_mib']} MiB")
        if "growth_per_cycle_after_warmup" in report:
            print(f"growth per cycle after the first: {report['growth_per_cycle_after_warmup']}")
            for row in report["types_growing"]:
                print(f"  {row['type']:<28} {row['per_conversation']:>10} per cycle")
        return
    print(f"{report['live']:,} live conversations; thresholds {report['thresholds']}")
    print(f"tracked objects per live conversation: {report['tracked_objects_per_conversation']}"
          f" ({report['tracked_objects_total']:,} tracked, {report['frozen_objects']:,} frozen)")
    for row in report["types"]:
        print(f"  {row['type']:<28} {row['per_conversation']:>8}")
    print(f"RSS per live conversation: {report['rss_bytes_per_conversation']:,} bytes "
          f"(process {report['rss_mib']['before']} -> {report['rss_mib']['with_n_live']} MiB)")
    if "traced_bytes_per_conversation" in report:
        print(f"allocated per live conversation (tracemalloc): "
              f"{report['traced_bytes_per_conversation']:,} bytes")
        for row in report["bytes_by_line"]:
            print(f"  {row['line']:<52} {row['bytes_per_conversation']:>8} B "
                  f"{row['blocks_per_conversation']:>6} blocks")
    print("collections while they were opened: " + ", ".join(
        f"{gen} {row['collections']} ({row['paused_ms']} ms, worst {row['worst_ms']} ms)"
        for gen, row in report["collections_while_opening"].items()))
    times = report["collection_with_n_live"]
    print(f"with them live: full collection {times['full_ms']} ms, "
          f"middle (gc.collect(1)) {times['middle_ms']} ms")
    if "collection_with_n_live_frozen" in report:
        times = report["collection_with_n_live_frozen"]
        print(f"after freezing them ({report['frozen_live_objects']:,} frozen): full collection "
              f"{times['full_ms']} ms, middle {times['middle_ms']} ms")
    if "collections" in report:
        print(f"{report['messages']:,} messages in {report['messages_seconds']} s; "
              f"per 10,000 messages:")
        for gen, row in report["collections"].items():
            print(f"  {gen}: {row['collections_per_10k_messages']} collections, "
                  f"{row['pause_ms_per_10k_messages']} ms paused, worst {row['worst_ms']} ms")
    if "warning" in report:
        print(f"warning: {report['warning']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=0,
                        help="texts to send afterwards, counting the collections they cause")
    parser.add_argument("--turns", type=int, default=0,
                        help="the same as --messages, in texts per live conversation")
    parser.add_argument("--threshold", default="",
                        help="gc.set_threshold for the run, e.g. 50000,20,20 (default: "
                             "what `intercept serve` sets)")
    parser.add_argument("--cycles", type=int, default=0,
                        help="start/hibernate/wake/end cycles instead of the live measure")
    parser.add_argument("--hibernate-after", type=float, default=0.5,
                        help="seconds idle before an actor hibernates (with --cycles)")
    parser.add_argument("--freeze-each-cycle", action="store_true")
    parser.add_argument("--freeze-live", "--freeze", action="store_true",
                        help="freeze once the conversations are live, then time the "
                             "collections again (and run --messages with them frozen)")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc batch")
    parser.add_argument("--top", type=int, default=15, help="rows in each table")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.conversations < 1 or min(args.messages, args.turns, args.cycles) < 0:
        parser.error("--conversations must be at least 1; --messages, --turns and --cycles "
                     "at least 0")
    args.messages = args.messages or args.turns * args.conversations
    if args.threshold:
        try:
            thresholds = [int(x) for x in args.threshold.split(",")]
            gc.set_threshold(*thresholds)
        except (ValueError, TypeError):
            parser.error(f"--threshold {args.threshold!r}: give 1 to 3 integers, e.g. 50000,20,20")
    else:
        collector.tune()
    number_metadata("+12065550100")  # load the lookup data (fixed, not per conversation)
    with tempfile.TemporaryDirectory(prefix="intercept-gcprobe-") as tmp:
        store = Path(tmp) / "probe.db"
        if args.cycles:
            report = trio.run(lambda: cycle_probe(
                args.conversations, store, cycles=args.cycles,
                hibernate_after=args.hibernate_after,
                freeze_each_cycle=args.freeze_each_cycle, top=args.top))
        else:
            report = trio.run(lambda: live_probe(args.conversations, store,
                                                 messages=args.messages, top=args.top,
                                                 trace=not args.no_trace,
                                                 freeze_live=args.freeze_live))
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        _print(report)
    return report


if __name__ == "__main__":
    main()
