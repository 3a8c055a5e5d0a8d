"""What live conversations cost the garbage collector, in one process.

    python -m loadtest.gcprobe [--conversations 20000] [--turns 2] [--freeze] [--json]

Opens N conversations of the shipped buyer-deterrence scenario through the sim gateway (an
in-process server, delays off, `hibernate_after` 1 h so every actor stays live), like
`loadtest.bench`, then:

- counts what each live conversation costs: RSS, and the objects the cyclic collector tracks
  (`gc.get_objects()`), by type;
- runs `--turns` more messages per conversation while `gc.callbacks` times every collection,
  by generation (count, total and longest pause).

`--freeze` calls `gc.freeze()` once the conversations are open (what `intercept serve` does after
start-up and recovery, for the objects alive then): their objects leave the collector's
generations, so the collections during the messages walk only what is new. `--threshold N`
sets the young generation's threshold (default 50,000, as `intercept serve` does).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from intercept.config import load_config
from intercept.engine.durations import Duration
from intercept.foundation.resources import bundled_root
from intercept.gateways import SimGateway
from intercept.server import Server
from loadtest.bench import BUYER_LINES, Buyers, rss_bytes


class Pauses:
    """Every collection's duration by generation, through `gc.callbacks`."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __enter__(self) -> Pauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append(time.perf_counter() - self._started)

    def figures(self) -> dict[str, dict[str, float]]:
        return {f"gen{g}": {"collections": len(p), "total_ms": round(sum(p) * 1000, 2),
                            "max_ms": round(max(p, default=0.0) * 1000, 2)}
                for g, p in self.by_generation.items()}


def tracked_by_type() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def probe(conversations: int, turns: int, freeze: bool, store: Path) -> dict[str, Any]:
    config = load_config(bundled_root() / "config" / "intercept.toml")
    config.runtime.hibernate_after = Duration.parse("1h")  # type: ignore[misc]
    gateway = SimGateway(receipts=True)
    server = Server(config, gateway=gateway, store_path=store, fast=True, http=False)
    buyers = Buyers(gateway)
    ours = [n.number for n in config.numbers]
    theirs = [f"+1{200 + i // 10_000_000 % 700:03d}{i % 10_000_000:07d}"
              for i in range(conversations)]
    out: dict[str, Any] = {"conversations": conversations, "turns": turns, "freeze": freeze,
                           "threshold": gc.get_threshold()}
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await server.router.lookups.lookup("number", "+12065550100", ours[0])
        gc.collect()
        rss_before, objects_before = rss_bytes(), tracked_by_type()

        async def open_one(i: int) -> None:
            await buyers.text(theirs[i], ours[i % len(ours)], BUYER_LINES[0])

        async with trio.open_nursery() as openers:
            for i in range(conversations):
                openers.start_soon(open_one, i)
        gc.collect()
        live = max(1, len(server.router.actors))
        objects = tracked_by_type()
        objects.subtract(objects_before)
        out["live_actors"] = len(server.router.actors)
        out["rss_kib_per_live_conversation"] = round((rss_bytes() - rss_before) / live / 1024, 2)
        out["tracked_objects_per_live_conversation"] = round(sum(objects.values()) / live, 1)
        out["tracked_by_type_per_conversation"] = {
            name: round(n / live, 2) for name, n in objects.most_common(30) if n > 0}
        out["frozen_objects"] = 0
        if freeze:
            gc.freeze()
            out["frozen_objects"] = gc.get_freeze_count()

        async def converse(i: int) -> None:
            for line in BUYER_LINES[1:turns + 1]:
                await buyers.text(theirs[i], ours[i % len(ours)], line)

        with Pauses() as pauses:
            started = time.perf_counter()
            async with trio.open_nursery() as talkers:
                for i in range(conversations):
                    talkers.start_soon(converse, i)
            elapsed = time.perf_counter() - started
        out["messages_in"] = conversations * turns
        out["seconds"] = round(elapsed, 2)
        out["gc_during_messages"] = pauses.figures()
        out["gc_ms_per_1000_messages"] = round(
            sum(sum(p) for p in pauses.by_generation.values()) * 1e6
            / max(1, conversations * turns), 2)
        server.stop()
    if freeze:
        gc.unfreeze()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.gcprobe",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=20_000)
    p.add_argument("--turns", type=int, default=2, help="messages per conversation after "
                   "the first, while the collector is timed (at most 5)")
    p.add_argument("--freeze", action="store_true",
                   help="gc.freeze() once the conversations are open")
    p.add_argument("--threshold", type=int, default=50_000,
                   help="the young generation's threshold (default 50,000, as the server)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not 1 <= args.conversations <= 200_000:
        p.error("--conversations must be between 1 and 200,000")
    gc.set_threshold(args.threshold, 20, 20)
    with tempfile.TemporaryDirectory(prefix="intercept-gcprobe-") as tmp:
        found = trio.run(probe, args.conversations, max(1, min(args.turns, 5)), args.freeze,
                         Path(tmp) / "probe.db")
    if args.json:
        print(json.dumps(found, indent=2))
        return
    print(f"{found['live_actors']:,} live conversations: "
          f"{found['rss_kib_per_live_conversation']} KiB RSS and "
          f"{found['tracked_objects_per_live_conversation']} tracked objects each"
          + (f"; {found['frozen_objects']:,} objects frozen" if found["freeze"] else ""))
    print("  tracked objects per conversation, by type: "
          + ", ".join(f"{k} {v}" for k, v in found["tracked_by_type_per_conversation"].items()))
    print(f"  {found['messages_in']:,} messages in {found['seconds']} s; collections: "
          + "; ".join(f"{g} {f['collections']} ({f['total_ms']} ms, max {f['max_ms']} ms)"
                      for g, f in found["gc_during_messages"].items())
          + f"; {found['gc_ms_per_1000_messages']} ms of collection per 1,000 messages")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
