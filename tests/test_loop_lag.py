"""The event loop's lag: a stall of the trio thread shows in `intercept_loop_lag_seconds`."""

from __future__ import annotations

import trio
import trio.testing

from intercept.foundation.metrics import Metrics
from intercept.runtime.loop_lag import watch_loop_lag


def _lag(metrics: Metrics, suffix: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"intercept_loop_lag_seconds_{suffix}",
                                             labels) or 0.0


def test_a_stall_is_measured_as_lag_and_a_quiet_loop_as_none():
    clock = trio.testing.MockClock(autojump_threshold=0)
    metrics = Metrics()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_loop_lag, metrics.loop_lag_seconds)
            await trio.sleep(1.05)  # ten quiet wake-ups, each on time
            assert _lag(metrics, "count") == 10.0
            assert _lag(metrics, "sum") < 1e-6
            clock.jump(0.35)  # the thread held for 0.35 s, 0.05 s before the next wake-up
            await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
    assert _lag(metrics, "count") == 11.0
    assert abs(_lag(metrics, "sum") - 0.30) < 1e-6
    assert _lag(metrics, "bucket", le="0.25") == 10.0
    assert _lag(metrics, "bucket", le="0.5") == 11.0

