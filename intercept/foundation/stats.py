"""Small statistics for the impact report: intervals and sample sizes, standard library only.

- `wilson`: the 95% Wilson score interval of a proportion (it stays inside 0..1 and behaves
  with small counts, where the plain normal interval does not);
- `mean_interval`: a mean with its normal-approximation interval;
- `sample_size`: conversations per branch needed to tell two proportions apart with a
  two-sided test (alpha 0.05, power 0.8 by default).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from statistics import NormalDist

import msgspec

_NORMAL = NormalDist()


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


class Proportion(msgspec.Struct, frozen=True):
    """`successes` of `trials`, their `rate`, with a confidence interval (None when there are
    no trials)."""

    successes: int
    trials: int
    rate: float | None
    low: float | None
    high: float | None


def wilson(successes: int, trials: int, confidence: float = 0.95) -> Proportion:
    """The Wilson score interval of `successes` out of `trials`."""
    if trials <= 0:
        return Proportion(successes, trials, None, None, None)
    z = z_for(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Proportion(successes, trials, p, low, high)


class Mean(msgspec.Struct, frozen=True):
    """The mean of `n` values with a normal-approximation interval (None below two values)."""

    n: int
    mean: float | None
    median: float | None
    low: float | None
    high: float | None


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Mean:
    """Mean ± z·s/√n of `values` (the median beside it)."""
    n = len(values)
    if n == 0:
        return Mean(0, None, None, None, None)
    mean = statistics.fmean(values)
    median = float(statistics.median(values))
    if n < 2:
        return Mean(n, mean, median, None, None)
    half = z_for(confidence) * statistics.stdev(values) / math.sqrt(n)
    return Mean(n, mean, median, mean - half, mean + half)


def sample_size(p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Trials per group for a two-sided test of two proportions to detect p1 against p2.

    n = (z(1-α/2)·√(2·p̄·q̄) + z(power)·√(p1·q1 + p2·q2))² / (p1 - p2)², with p̄ the mean of
    the two, rounded up. None when the proportions are equal (no sample is enough).
    """
    if p1 == p2:
        return None
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"proportions must be between 0 and 1, not {p1} and {p2}")
    mean = (p1 + p2) / 2
    a = _NORMAL.inv_cdf(1 - alpha / 2) * math.sqrt(2 * mean * (1 - mean))
    b = _NORMAL.inv_cdf(power) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((a + b) ** 2 / (p1 - p2) ** 2)


def needed_per_group(baseline: float | None, effect: float, *, alpha: float = 0.05,
                     power: float = 0.8) -> int | None:
    """Trials per group to detect a difference of `effect` (absolute) from `baseline`.

    The other proportion is taken towards one half (the larger variance), so the answer is the
    cautious one of the two directions. None without a baseline or with no effect.
    """
    if baseline is None or effect <= 0:
        return None
    other = baseline + effect if baseline <= 0.5 else baseline - effect
    other = min(1.0, max(0.0, other))
    return sample_size(baseline, other, alpha=alpha, power=power)
