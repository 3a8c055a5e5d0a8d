"""The cyclic garbage collector, tuned for a process that holds many long-lived objects.

Tens of thousands of live conversations are hundreds of thousands of long-lived objects. With
Python's default thresholds the collector walks them every few seconds under load and each
full pass stops the process for 0.3-1 s. `tune()` sets the thresholds chosen with
`python -m loadtest.gcprobe` (docs/performance.md, "Memory per live conversation, object by
object"); `freeze()` moves everything alive now out of the collector's sight for good.
"""

from __future__ import annotations

import gc

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
    garbage cycle is never freed. So this is for what lives as long as the process (what
    start-up loaded), not for what a conversation holds while it is live.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
