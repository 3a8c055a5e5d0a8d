"""The garbage-collector pause metric."""

from __future__ import annotations

import gc

from intercept.foundation.metrics import Metrics


def test_collections_are_timed_while_watched_and_only_then():
    metrics = Metrics()
    count = lambda: metrics.registry.get_sample_value(  # noqa: E731
        "intercept_gc_pause_seconds_count", {"generation": "2"}) or 0.0
    with metrics.watching_gc():
        gc.collect()
        gc.collect()
    assert count() == 2.0
    assert metrics.registry.get_sample_value(
        "intercept_gc_pause_seconds_sum", {"generation": "2"}) > 0.0
    gc.collect()
    assert count() == 2.0
    assert metrics._on_gc not in gc.callbacks
