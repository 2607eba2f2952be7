"""The variant statistics against hand-computed values and simulated experiments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ragserve.experiments.stats import compare_means, compare_rates, summarize


def test_summary_of_known_values() -> None:
    """Mean, sample std and the t-interval of 1..5 by hand: 3, √2.5, 3 ± 2.776·√2.5/√5."""
    summary = summarize([1, 2, 3, 4, 5])
    assert (summary.count, summary.minimum, summary.maximum) == (5, 1.0, 5.0)
    assert summary.mean == 3.0
    assert summary.std == pytest.approx(math.sqrt(2.5))
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((3 - half, 3 + half))
    assert summary.percentiles["p50"] == 3.0


def test_welch_matches_the_formula_by_hand() -> None:
    """t, df and p for two small samples, computed from Welch's formulas directly."""
    a, b = [20.0, 22.0, 19.0, 24.0, 25.0], [28.0, 31.0, 27.0, 33.0, 30.0, 29.0]
    result = compare_means(a, b)
    va, vb = np.var(a, ddof=1) / 5, np.var(b, ddof=1) / 6
    t = (np.mean(b) - np.mean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 5)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert result.difference == pytest.approx(np.mean(b) - np.mean(a))
    assert result.verdict == "b_better"
    assert compare_means(a, b, higher_is_better=False).verdict == "a_better"


def test_the_interval_covers_the_true_difference_95_percent_of_the_time() -> None:
    """400 simulated A/B tests with a true difference of 0.3: coverage near 95%."""
    rng = np.random.default_rng(7)
    covered = 0
    runs = 400
    for _ in range(runs):
        a = rng.normal(1.0, 1.0, 40)
        b = rng.normal(1.3, 2.0, 60)
        result = compare_means(a.tolist(), b.tolist())
        covered += result.ci_low <= 0.3 <= result.ci_high
    assert 0.91 <= covered / runs <= 0.99


def test_no_difference_is_found_between_identical_distributions() -> None:
    """Same distribution: 'no_difference' in about 95% of simulated tests (5% false alarms)."""
    rng = np.random.default_rng(11)
    verdicts = [
        compare_means(rng.normal(0, 1, 50).tolist(), rng.normal(0, 1, 50).tolist()).verdict
        for _ in range(400)
    ]
    assert 0.91 <= verdicts.count("no_difference") / 400 <= 0.99


def test_minimum_detectable_effect_shrinks_with_the_sample() -> None:
    """MDE ∝ 1/√n: four times the data halves it."""
    rng = np.random.default_rng(3)
    small = compare_means(rng.normal(0, 1, 100).tolist(), rng.normal(0, 1, 100).tolist())
    large = compare_means(rng.normal(0, 1, 400).tolist(), rng.normal(0, 1, 400).tolist())
    assert large.minimum_detectable_effect == pytest.approx(
        small.minimum_detectable_effect / 2, rel=0.15
    )
    assert small.minimum_detectable_effect == pytest.approx(2.8016 * math.sqrt(2 / 100), rel=0.1)


def test_two_proportion_z_by_hand() -> None:
    """45/100 against 30/100: pooled 0.375, z = 0.15 / √(0.375·0.625·0.02) = 2.1909."""
    result = compare_rates(30, 100, 45, 100)
    assert result.test == "two_proportion_z"
    assert result.difference == pytest.approx(0.15)
    assert result.p_value == pytest.approx(0.028459, abs=1e-5)
    assert result.verdict == "b_better"


def test_small_counts_use_fishers_exact_test() -> None:
    """3/10 against 9/10: the two-sided hypergeometric p-value, summed by hand."""
    result = compare_rates(3, 10, 9, 10)
    assert result.test == "fisher_exact"
    # Tables with the same margins (12 successes in 20) as likely as, or less than, observed.
    total = math.comb(20, 12)
    probability = [math.comb(10, k) * math.comb(10, 12 - k) / total for k in range(2, 11)]
    observed = math.comb(10, 3) * math.comb(10, 9) / total
    expected_p = sum(p for p in probability if p <= observed * (1 + 1e-7))
    assert result.p_value == pytest.approx(expected_p)
    assert result.verdict == "b_better"


def test_too_little_data_says_so() -> None:
    assert compare_means([1.0], [2.0, 3.0]).verdict == "not_enough_data"
    assert compare_rates(0, 0, 1, 2).verdict == "not_enough_data"
    with pytest.raises(ValueError, match="between 0"):
        compare_rates(5, 3, 1, 2)
