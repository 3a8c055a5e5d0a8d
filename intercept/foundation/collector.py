"""The cyclic garbage collector, tuned for a process that holds many long-lived objects.

Tens of thousands of live conversations are hundreds of thousands of long-lived objects. With
Python's default thresholds the collector walks them every few seconds under load and each
full pass stops the process for 0.3-1 s. `tune()` sets the thresholds chosen with
`python -m loadtest.gcprobe` (docs/performance.md, "Memory per live conversation, object by
object"); `freeze()` moves everything alive now out of the collector's sight;
`freezing_survivors()` does the same after every collection, and `sweep()` thaws and collects
everything now and then, so that what was frozen and later died in a cycle is freed.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import trio

THRESHOLDS = (50_000, 20, 20)
"""Young generation every 50,000 allocations (net of deallocations), so that the objects of one
message die before they are promoted; the middle every 20 young ones, the old every 20 middle
ones (and, in CPython, only once it has grown by a quarter)."""


def tune() -> None:
    """Set the collector's thresholds for a server process."""
    gc.set_threshold(*THRESHOLDS)


def freeze() -> int:
    """Collect, then freeze what is left; return how many objects are frozen in all.

    Frozen objects are never walked again, nor collected: one that later becomes part of a
    garbage cycle is freed only by a `sweep()`.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _freeze_after(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        gc.freeze()


@contextmanager
def freezing_survivors() -> Iterator[None]:
    """While inside, what survives any collection is frozen at once.

    A collection frees the garbage cycles among the objects it walks, so what survives it is
    alive at that moment: the live conversations' tasks and states, mostly, which a server
    holds for minutes or hours and frees by reference counting when they end. Frozen, they are
    never walked again, so the middle and full collections that walked every live conversation
    (0.4 s with 50,000 live, docs/performance.md) find almost nothing to do; only young
    collections remain. What such a survivor leaves behind *in a reference cycle* once it dies
    stays until `sweep()` runs, so a server that freezes survivors also sweeps periodically.
    """
    gc.callbacks.append(_freeze_after)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_after)


class Sweep(NamedTuple):
    freed: int
    """Unreachable objects found (garbage cycles that were frozen since the last sweep)."""
    frozen: int
    """Objects frozen after it: what is alive."""
    seconds: float
    """How long the process stood still."""


_sweeping = False


def sweeping() -> bool:
    """A sweep's collection is running (for a gc callback that tells it from the others)."""
    return _sweeping


def sweep() -> Sweep:
    """Thaw everything, collect it all, freeze what is left: frees the garbage cycles frozen
    since the last sweep. One pause that walks every live object (~0.4 s with 50,000 live
    conversations; the start-up data adds ~25 ms)."""
    global _sweeping
    started = time.perf_counter()
    gc.unfreeze()
    _sweeping = True
    try:
        freed = gc.collect()
    finally:
        _sweeping = False
    gc.freeze()
    return Sweep(freed, gc.get_freeze_count(), time.perf_counter() - started)


YOUNG_EVERY = 0.25
"""Seconds between the young collections `keep_frozen` makes on its own (see there)."""


async def keep_frozen(every: float, on_sweep: Callable[[Sweep], object] | None = None, *,
                      young_every: float = YOUNG_EVERY) -> None:
    """Freeze what survives each collection and `sweep()` every `every` seconds, until
    cancelled (then survivors are no longer frozen).

    It also collects the young generation every `young_every` seconds. CPython counts the young
    generation's size as allocations *minus deallocations of any tracked object*, so while old
    objects die (conversations ending, a frozen burst of buyers) the count stays low and the
    young generation grows unseen, to hundreds of thousands of objects collected in one pause
    (0.37 s measured in the load tester's buyer processes). On a clock, each collection walks
    only what is alive of the last quarter second's allocations.
    """
    with freezing_survivors():
        sweep_at = trio.current_time() + every
        while True:
            await trio.sleep(young_every)
            if trio.current_time() < sweep_at:
                gc.collect(0)
                continue
            swept = sweep()
            sweep_at = trio.current_time() + every
            if on_sweep is not None:
                on_sweep(swept)
