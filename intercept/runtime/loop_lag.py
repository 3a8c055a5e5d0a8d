"""How late the event loop runs: the one number that shows a stalled trio thread.

Every conversation, the gateway and the HTTP API share one trio thread; while it is held (a
garbage collection, a long synchronous step) none of them moves. A timer that should fire every
`every` seconds and fires `lag` seconds late says so: `intercept_loop_lag_seconds`.
"""

from __future__ import annotations

import trio
from prometheus_client import Histogram


async def watch_loop_lag(lag_seconds: Histogram, *, every: float = 0.1,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Sleep `every` seconds, observe how much later than asked the loop woke, forever."""
    task_status.started()
    while True:
        asked = trio.current_time() + every
        await trio.sleep_until(asked)
        lag_seconds.observe(max(0.0, trio.current_time() - asked))
