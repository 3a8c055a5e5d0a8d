"""What stopped or slowed the server during the load: its garbage collections, its event
loop's lag, and its store's commits (every text waits for two: its own, and its reply's).

Read from the server's /metrics at the start and at the end of the load
(`intercept_gc_pause_seconds`, `intercept_loop_lag_seconds`, `intercept_store_commit_seconds`,
`intercept_store_batch_size`); the report gives the difference, so start-up and recovery are
left out.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Histograms = dict[str, dict[str, dict[float, float] | float]]
"""name{label} -> {"buckets": {le: cumulative count}, "count": n, "sum": seconds}."""

_WATCHED = {"intercept_gc_pause_seconds": "generation", "intercept_loop_lag_seconds": None,
            "intercept_store_commit_seconds": None, "intercept_store_batch_size": None}


def parse(text: str) -> Histograms:
    """The watched histograms of a /metrics page, keyed by name and label value."""
    found: Histograms = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _WATCHED:
            continue
        label = _WATCHED[family.name]
        for sample in family.samples:
            key = family.name + (f"{{{sample.labels.get(label, '')}}}" if label else "")
            row = found.setdefault(key, {"buckets": {}, "count": 0.0, "sum": 0.0})
            if sample.name.endswith("_bucket"):
                row["buckets"][float(sample.labels["le"])] = sample.value  # type: ignore[index]
            elif sample.name.endswith("_count"):
                row["count"] = sample.value
            elif sample.name.endswith("_sum"):
                row["sum"] = sample.value
    return found


async def read(base: str) -> Histograms | None:
    """The watched histograms of the server at `base`, or None when /metrics cannot be read."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.get(f"{base}/metrics")
            if answer.status_code == 200:
                return parse(answer.text)
    return None


def _over(buckets: dict[float, float], count: float, limit: float) -> int:
    """How many observations were above `limit` (a bucket bound)."""
    return round(count - buckets.get(limit, count))


def figures(start: Histograms | None, end: Histograms | None) -> dict[str, Any] | None:
    """The pauses between two readings: collections by generation (count, seconds, over 50 ms)
    and the loop's lag (samples, seconds, samples later than 20 ms / 100 ms / 500 ms)."""
    if start is None or end is None:
        return None

    def delta(key: str) -> tuple[dict[float, float], float, float]:
        now, then = end.get(key), start.get(key, {"buckets": {}, "count": 0.0, "sum": 0.0})
        if now is None:
            return {}, 0.0, 0.0
        buckets = {le: count - then["buckets"].get(le, 0.0)  # type: ignore[union-attr]
                   for le, count in now["buckets"].items()}  # type: ignore[union-attr]
        return buckets, now["count"] - then["count"], now["sum"] - then["sum"]  # type: ignore

    found: dict[str, Any] = {"gc": {}}
    for key in sorted(end):
        if key.startswith("intercept_gc_pause_seconds{"):
            buckets, count, seconds = delta(key)
            if count:
                label = key[key.index("{") + 1:-1]
                name = "sweeps" if label == "sweep" else f"generation {label}"
                found["gc"][name] = {
                    "collections": round(count), "seconds": round(seconds, 3),
                    "over_50ms": _over(buckets, count, 0.05)}
    if "intercept_loop_lag_seconds" in end:
        buckets, count, seconds = delta("intercept_loop_lag_seconds")
        found["loop_lag"] = {"samples": round(count), "seconds": round(seconds, 3),
                             "over_20ms": _over(buckets, count, 0.02),
                             "over_100ms": _over(buckets, count, 0.1),
                             "over_500ms": _over(buckets, count, 0.5)}
    if "intercept_store_commit_seconds" in end:
        buckets, count, seconds = delta("intercept_store_commit_seconds")
        _, batches, ops = delta("intercept_store_batch_size")
        found["store_commits"] = {"commits": round(count), "seconds": round(seconds, 3),
                                  "ops_per_commit": round(ops / batches, 1) if batches else None,
                                  "over_25ms": _over(buckets, count, 0.025),
                                  "over_100ms": _over(buckets, count, 0.1),
                                  "over_250ms": _over(buckets, count, 0.25)}
    return found
