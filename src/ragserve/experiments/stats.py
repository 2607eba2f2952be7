"""The statistics that decide between variants: summaries with confidence intervals, Welch's
t-test for means, a two-proportion z-test (Fisher's exact test for small counts) for rates,
and the minimum detectable effect at the current sample size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
FISHER_BELOW = 5  # an expected cell count below this: the normal approximation is poor

Verdict = Literal["a_better", "b_better", "no_difference", "not_enough_data"]


@dataclass(frozen=True)
class Summary:
    """One metric of one variant."""

    count: int
    mean: float
    std: float
    minimum: float
    maximum: float
    percentiles: dict[str, float]
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """Variant b against variant a on one metric: ``difference`` is b − a."""

    test: Literal["welch_t", "two_proportion_z", "fisher_exact"]
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    minimum_detectable_effect: float
    verdict: Verdict


def summarize(values: Sequence[float], *, confidence: float = 1 - ALPHA) -> Summary:
    """Count, mean, sample standard deviation, extremes, p50/p90/p95/p99 and a t-interval
    for the mean (the mean itself when there are fewer than two values)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to summarize")
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else 0.0
    low = high = mean
    if data.size > 1:
        half = stats.t.ppf((1 + confidence) / 2, data.size - 1) * std / math.sqrt(data.size)
        low, high = mean - half, mean + half
    quantiles = np.percentile(data, [50, 90, 95, 99])
    return Summary(
        count=int(data.size),
        mean=mean,
        std=std,
        minimum=float(data.min()),
        maximum=float(data.max()),
        percentiles={f"p{q}": float(v) for q, v in zip((50, 90, 95, 99), quantiles, strict=True)},
        ci_low=low,
        ci_high=high,
    )


def compare_means(
    a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True
) -> Comparison:
    """Welch's t-test (unequal variances), the Welch–Satterthwaite interval of b − a, and the
    difference detectable with ``POWER`` at ``ALPHA`` given these samples' sizes and spread."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return _not_enough("welch_t")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    difference = float(y.mean() - x.mean())
    mde = (_z(1 - ALPHA / 2) + _z(POWER)) * se
    if se == 0:  # both constant: equal or certainly different
        p = 1.0 if difference == 0 else 0.0
        return _decide("welch_t", difference, difference, difference, p, mde, higher_is_better)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    half = stats.t.ppf(1 - ALPHA / 2, df) * se
    p = float(stats.ttest_ind(y, x, equal_var=False).pvalue)
    return _decide(
        "welch_t", difference, difference - half, difference + half, p, mde, higher_is_better
    )


def compare_rates(successes_a: int, total_a: int, successes_b: int, total_b: int) -> Comparison:
    """Rate b − rate a: a two-proportion z-test with a Wald interval, or Fisher's exact test
    when an expected cell count is below ``FISHER_BELOW``; a higher rate is better."""
    for successes, total in ((successes_a, total_a), (successes_b, total_b)):
        if total < 0 or not 0 <= successes <= total:
            raise ValueError("successes must be between 0 and the total")
    if total_a == 0 or total_b == 0:
        return _not_enough("two_proportion_z")
    rate_a, rate_b = successes_a / total_a, successes_b / total_b
    difference = rate_b - rate_a
    pooled = (successes_a + successes_b) / (total_a + total_b)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    wald_se = math.sqrt(rate_a * (1 - rate_a) / total_a + rate_b * (1 - rate_b) / total_b)
    half = _z(1 - ALPHA / 2) * wald_se
    mde = (_z(1 - ALPHA / 2) + _z(POWER)) * pooled_se
    expected = [total * share for total in (total_a, total_b) for share in (pooled, 1 - pooled)]
    if min(expected) < FISHER_BELOW:
        table = [[successes_a, total_a - successes_a], [successes_b, total_b - successes_b]]
        p = float(stats.fisher_exact(table).pvalue)
        test: Literal["two_proportion_z", "fisher_exact"] = "fisher_exact"
    else:
        z = difference / pooled_se if pooled_se else 0.0
        p = float(2 * stats.norm.sf(abs(z)))
        test = "two_proportion_z"
    return _decide(test, difference, difference - half, difference + half, p, mde, True)


def _decide(
    test: Literal["welch_t", "two_proportion_z", "fisher_exact"],
    difference: float,
    low: float,
    high: float,
    p: float,
    mde: float,
    higher_is_better: bool,
) -> Comparison:
    verdict: Verdict = "no_difference"
    if p < ALPHA:
        b_higher = difference > 0
        verdict = "b_better" if b_higher == higher_is_better else "a_better"
    return Comparison(test, difference, low, high, p, mde, verdict)


def _not_enough(test: Literal["welch_t", "two_proportion_z"]) -> Comparison:
    nan = float("nan")
    return Comparison(test, nan, nan, nan, nan, nan, "not_enough_data")


def _z(quantile: float) -> float:
    return float(stats.norm.ppf(quantile))
