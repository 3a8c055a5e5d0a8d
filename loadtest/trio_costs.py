"""What the runtime's trio mechanisms cost on this machine, with no work inside them.

    python -m loadtest.trio_costs [--cpu 0] [--rounds 3] [--json]

Every text the server handles passes through a few mechanisms whatever the scenario says: tasks
switching, calls to the store's writer (`Store.call`: queued on a channel, committed in a batch
in a worker thread, answered by rescheduling the caller) and tasks spawned and ended (the
sender's per-conversation submits, the router's actors). This measures each one empty, so that
a text's cost can be split into what its parts do and what moving between them costs:

- **task switch**: two tasks taking turns at `trio.lowlevel.checkpoint()`;
- **store call**: `Store.call()` of an op that writes nothing (a real `Store`, in memory, so a
  commit is `BEGIN IMMEDIATE` and `COMMIT` of an empty transaction), from 1, 15 and 100
  concurrent callers (the batches the writer sees at low load, at ~1,600 texts a second with
  50,000 buyers, and beyond), with the commit in a worker thread (the server's way) and inline;
- **spawn**: a task started in a nursery that returns at once.

`--cpu N` pins the process to one CPU first, as the load tests pin the server. Each figure is
the best of `--rounds` runs (the least disturbed by the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from sqlite3 import Cursor

import trio

from intercept.store import Store
from intercept.store.ops import Op, WriterCache
from loadtest.cli import positive

SWITCHES = 100_000
CALLS = 60_000
SPAWNS = 60_000
"""How many of each are timed (tests make them small)."""
CALLERS = (1, 15, 100)


class Nothing(Op):
    """An op that writes nothing: what is left of a store call is its mechanism."""

    __slots__ = ()

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        return None


async def task_switch() -> float:
    """Seconds per switch between two tasks."""
    n = SWITCHES
    async def spin() -> None:
        for _ in range(n):
            await trio.lowlevel.checkpoint()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(spin)
        nursery.start_soon(spin)
    return (time.perf_counter() - started) / (2 * n)


async def store_call(callers: int, *, threaded: bool) -> float:
    """Seconds per `Store.call()` of an empty op, `callers` tasks calling at once."""
    store = Store(":memory:", threaded=threaded)
    each = max(CALLS // callers, 1)

    async def caller() -> None:
        for _ in range(each):
            await store.call(Nothing())

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            try:  # the writer serves until closed, even when cancelled
                started = time.perf_counter()
                async with trio.open_nursery() as callers_nursery:
                    for _ in range(callers):
                        callers_nursery.start_soon(caller)
                elapsed = time.perf_counter() - started
            finally:
                store.close()
    finally:
        store.shutdown()
    return elapsed / (each * callers)


async def spawn() -> float:
    """Seconds per task started in a nursery and ended."""
    n = SPAWNS
    async def nothing() -> None:
        return None

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(nothing)
    return (time.perf_counter() - started) / n


def _best(measure: Callable[[], Awaitable[float]], rounds: int) -> float:
    return min(trio.run(measure) for _ in range(rounds))


def measure(rounds: int) -> dict[str, float]:
    """Microseconds per mechanism, best of `rounds`."""
    results = {"task switch": _best(task_switch, rounds)}
    for callers in CALLERS:
        for threaded in (True, False):
            where = "worker thread" if threaded else "inline"
            results[f"store call, {callers} callers, {where}"] = _best(
                lambda c=callers, t=threaded: store_call(c, threaded=t), rounds)
    results["spawn and end a task"] = _best(spawn, rounds)
    return {name: round(seconds * 1e6, 2) for name, seconds in results.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.trio_costs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", type=int, default=None, metavar="N",
                   help="pin this process to CPU N first (as --pin does for the server)")
    p.add_argument("--rounds", type=positive(int), default=3,
                   help="runs of each; the best is kept")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if args.cpu is not None:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except (AttributeError, OSError) as exc:
            p.error(f"cannot pin to CPU {args.cpu}: {exc}")
    results = measure(args.rounds)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    for name, micros in results.items():
        print(f"{name:40} {micros:8.2f} us")


if __name__ == "__main__":
    main()
