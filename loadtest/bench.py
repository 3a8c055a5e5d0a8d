"""Throughput and memory of the whole pipeline, in one process.

    python -m loadtest.bench [--conversations 10000] [--turns 4]

Simulated buyers (one trio task each) text the shipped personas through the sim gateway; each
waits for the persona's reply before texting again, like a person. Every message goes
router -> actor -> engine -> store (real SQLite file, group commit) -> sender -> sim gateway.
Prints messages per second and the memory each live conversation costs.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import trio

from intercept.config import load_config
from intercept.engine.durations import Duration
from intercept.foundation.resources import bundled_root
from intercept.gateways import OutboundMessage, SimGateway
from intercept.server import Server

BUYER_LINES = ["hey is this available", "how much for an hour", "ok tonight at 9pm",
               "my place is fine", "here u go", "hello?"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Buyers:
    """One task per simulated buyer; each waits for a reply before the next line."""

    def __init__(self, gateway: SimGateway):
        self.replied: dict[str, trio.Event] = {}
        self.received: defaultdict[str, int] = defaultdict(int)
        gateway.subscribe(self._deliver)
        self.gateway = gateway

    def _deliver(self, message: OutboundMessage) -> None:
        self.received[message.their_number] += 1
        event = self.replied.pop(message.their_number, None)
        if event is not None:
            event.set()

    async def text(self, their: str, ours: str, line: str) -> None:
        event = self.replied[their] = trio.Event()
        await self.gateway.inject(their_number=their, our_number=ours, text=line)
        await event.wait()


async def bench(conversations: int, turns: int, store: Path, synchronous: str,
                threaded: bool = True) -> dict[str, float]:
    config = load_config(bundled_root() / "config" / "intercept.toml")
    config.store.synchronous = synchronous  # type: ignore[misc]
    config.runtime.hibernate_after = Duration.parse("1h")  # type: ignore[misc]
    gateway = SimGateway(receipts=True)
    server = Server(config, gateway=gateway, store_path=store, fast=True, http=False,
                    threaded_store=threaded)
    buyers = Buyers(gateway)
    ours = [n.number for n in config.numbers]
    theirs = [f"+1{200 + i // 10_000_000 % 700:03d}{i % 10_000_000:07d}" for i in
              range(conversations)]
    results: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        # The scenario asks for the offline number lookup: load its data (a fixed ~100 MB,
        # not a per-conversation cost) before measuring.
        rss_cold = rss_bytes()
        await server.router.lookups.lookup("number", "+12065550100", ours[0])
        gc.collect()
        rss_before = rss_bytes()
        print(f"fixed cost of the number lookup data: "
              f"{(rss_before - rss_cold) / 2**20:.0f} MiB", file=sys.stderr)

        async def open_one(i: int) -> None:
            await buyers.text(theirs[i], ours[i % len(ours)], BUYER_LINES[0])

        started = time.perf_counter()
        async with trio.open_nursery() as openers:
            for i in range(conversations):
                openers.start_soon(open_one, i)
        opened = time.perf_counter() - started
        gc.collect()
        live = len(server.router.actors)
        results["live_actors"] = live
        results["open_rate"] = conversations / opened
        results["bytes_per_live_conversation"] = (rss_bytes() - rss_before) / max(live, 1)
        print(f"opened {conversations} conversations in {opened:.2f}s "
              f"({conversations / opened:,.0f}/s); {live} live actors; "
              f"{results['bytes_per_live_conversation'] / 1024:.1f} KiB RSS per live "
              f"conversation", file=sys.stderr)

        async def converse(i: int) -> None:
            for line in BUYER_LINES[1:turns + 1]:
                await buyers.text(theirs[i], ours[i % len(ours)], line)

        out_before = sum(buyers.received.values())
        started = time.perf_counter()
        async with trio.open_nursery() as talkers:
            for i in range(conversations):
                talkers.start_soon(converse, i)
        elapsed = time.perf_counter() - started
        sent_in = conversations * turns
        sent_out = sum(buyers.received.values()) - out_before
        results["messages_in_per_s"] = sent_in / elapsed
        results["messages_out_per_s"] = sent_out / elapsed
        results["seconds"] = elapsed
        print(f"{sent_in:,} messages in, {sent_out:,} replies out in {elapsed:.2f}s: "
              f"{sent_in / elapsed:,.0f} in/s, {sent_out / elapsed:,.0f} out/s, "
              f"{(sent_in + sent_out) / elapsed:,.0f} total msg/s", file=sys.stderr)
        batch = server.metrics.registry
        commits = batch.get_sample_value("intercept_store_batch_size_count") or 0
        ops = batch.get_sample_value("intercept_store_batch_size_sum") or 0
        busy = batch.get_sample_value("intercept_store_commit_seconds_sum") or 0
        results["store_busy_seconds"] = busy
        print(f"store: {commits:,.0f} commits, {ops / max(commits, 1):,.1f} operations per "
              f"commit, {busy:.2f}s committing in all", file=sys.stderr)
        server.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=4, help="messages per buyer after the "
                        "first (at most 5)")
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--inline-store", action="store_true",
                        help="commit on the trio thread instead of a worker thread")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="intercept-bench-") as tmp:
        store = args.db or Path(tmp) / "bench.db"
        trio.run(bench, args.conversations, min(args.turns, 5), store, args.synchronous,
                 not args.inline_store)


if __name__ == "__main__":
    main()
