"""The load report's pauses: the server's collections and loop lag between two /metrics reads."""

from __future__ import annotations

import gc

import trio

from intercept.foundation import collector
from intercept.foundation.metrics import Metrics
from loadtest import pauses


def test_the_report_gives_what_happened_between_the_two_readings():
    metrics = Metrics()
    lag = metrics.loop_lag_seconds
    for seconds in (0.001, 0.03):
        lag.observe(seconds)
    with metrics.watching_gc():
        gc.collect()
    metrics.store_commit_seconds.observe(0.01)
    metrics.store_batch_size.observe(10)
    start = pauses.parse(metrics.render().decode())
    for seconds, ops in ((0.02, 100), (0.3, 500)):
        metrics.store_commit_seconds.observe(seconds)
        metrics.store_batch_size.observe(ops)
    for seconds in (0.001, 0.015, 0.03, 0.2, 0.7):
        lag.observe(seconds)
    with metrics.watching_gc():
        gc.collect()
        gc.collect(0)
        collector.sweep()
    gc.unfreeze()
    found = pauses.figures(start, pauses.parse(metrics.render().decode()))
    assert found is not None
    assert found["loop_lag"] == {"samples": 5, "seconds": 0.946, "over_20ms": 3,
                                 "over_100ms": 2, "over_500ms": 1}
    assert found["store_commits"] == {"commits": 2, "seconds": 0.32, "ops_per_commit": 300.0,
                                      "over_25ms": 1, "over_100ms": 1, "over_250ms": 1}
    assert found["gc"]["generation 2"]["collections"] == 1
    assert found["gc"]["generation 0"]["collections"] == 1
    assert found["gc"]["generation 2"]["over_50ms"] in (0, 1)
    assert found["gc"]["sweeps"]["collections"] == 1  # runtime.collector_sweep's, apart


def test_no_reading_no_figures():
    assert pauses.figures(None, {}) is None
    assert pauses.figures({}, None) is None


async def test_a_server_that_does_not_answer_gives_none():
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    assert await pauses.read(f"http://127.0.0.1:{port}") is None

