"""Paired comparison of two stored evaluation runs over the queries both scored.

For each per-query metric: the means of A and B, the mean difference B − A with a paired
t-interval, the paired t-test and Wilcoxon signed-rank p-values, McNemar's exact test for
binary metrics, per-query wins, ties and losses, and a verdict at ``ALPHA`` in the vocabulary
of :mod:`ragserve.experiments.stats`. The verdict follows McNemar's test for binary metrics
and the paired t-test otherwise (the Wilcoxon p-value is reported as a check that does not
assume normal differences). Pure functions: runs in, figures out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from ragserve.errors import InputError
from ragserve.experiments.stats import ALPHA, Verdict
from ragserve.store.experiments import EvalRunRecord

__all__ = [
    "METRICS",
    "MetricComparison",
    "RunComparison",
    "comparable_scores",
    "compare_runs",
    "paired_comparison",
]

Test = Literal["paired_t", "mcnemar_exact"]


@dataclass(frozen=True)
class MetricSpec:
    binary: bool
    higher_is_better: bool


# Known per-query metrics, in display order. The abstention rates are derived from
# ``abstained`` and ``answerable``: abstaining is right on unanswerable questions only.
METRICS: dict[str, MetricSpec] = {
    "ndcg@10": MetricSpec(binary=False, higher_is_better=True),
    "recall@100": MetricSpec(binary=False, higher_is_better=True),
    "mrr@10": MetricSpec(binary=False, higher_is_better=True),
    "exact_match": MetricSpec(binary=True, higher_is_better=True),
    "f1": MetricSpec(binary=False, higher_is_better=True),
    "citation_correct": MetricSpec(binary=True, higher_is_better=True),
    "no_answer_abstention": MetricSpec(binary=True, higher_is_better=True),
    "has_answer_abstention": MetricSpec(binary=True, higher_is_better=False),
    "judge_faithfulness": MetricSpec(binary=False, higher_is_better=True),
    "judge_relevance": MetricSpec(binary=False, higher_is_better=True),
    "judge_completeness": MetricSpec(binary=False, higher_is_better=True),
    "judge_failed": MetricSpec(binary=True, higher_is_better=False),
    "latency_ms": MetricSpec(binary=False, higher_is_better=False),
}
_NOT_COMPARED = frozenset({"abstained", "answerable"})  # raw inputs of the derived rates


@dataclass(frozen=True)
class MetricComparison:
    """B against A on one metric over ``n`` paired queries; ``difference`` is mean(B − A).

    ``b_wins``/``a_wins`` count queries where that run scored better (in the metric's
    direction); p-values are ``nan`` when undefined (fewer than two pairs).
    """

    metric: str
    n: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    t_p: float
    wilcoxon_p: float
    mcnemar_p: float | None
    b_wins: int
    ties: int
    a_wins: int
    test: Test
    p_value: float
    higher_is_better: bool
    verdict: Verdict


@dataclass(frozen=True)
class RunComparison:
    """Run B against run A over the queries both scored; ``pairs``: metric → query id →
    (A's score, B's score)."""

    run_a: str
    run_b: str
    label_a: str
    label_b: str
    dataset: str
    dataset_fingerprint: str
    queries: int
    metrics: tuple[MetricComparison, ...]
    pairs: dict[str, dict[str, tuple[float, float]]] = field(repr=False)

    def metric(self, name: str) -> MetricComparison:
        for comparison in self.metrics:
            if comparison.metric == name:
                return comparison
        known = ", ".join(m.metric for m in self.metrics)
        raise InputError(f"metric {name!r} is not scored per query in both runs (known: {known})")

    def worse(self, names: Sequence[str]) -> list[MetricComparison]:
        """The metrics among ``names`` on which B is significantly worse than A."""
        return [c for c in map(self.metric, names) if c.verdict == "a_better"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``nan`` becomes ``null``)."""
        data = asdict(self)
        data["metrics"] = [_finite(m) for m in data["metrics"]]
        data["pairs"] = {
            metric: {qid: list(pair) for qid, pair in pairs.items()}
            for metric, pairs in self.pairs.items()
        }
        return data


def compare_runs(
    a: EvalRunRecord, b: EvalRunRecord, metrics: Sequence[str] | None = None
) -> RunComparison:
    """Compare B against A on ``metrics`` (default: every per-query metric both have).

    Raises ``InputError`` when the runs are of different datasets (fingerprints) or a named
    metric is not scored per query in both runs.
    """
    if a.dataset_fingerprint != b.dataset_fingerprint:
        raise InputError(
            f"runs {a.id[:12]} ({a.dataset}, {a.dataset_fingerprint}) and {b.id[:12]} "
            f"({b.dataset}, {b.dataset_fingerprint}) are of different datasets; only runs on "
            "the same dataset can be compared"
        )
    rows_a, rows_b = comparable_scores(a.per_query), comparable_scores(b.per_query)
    shared = [qid for qid in rows_a if qid in rows_b]
    available = _metric_names(rows_a, rows_b, shared)
    names = list(metrics) if metrics is not None else available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise InputError(
            f"metric(s) {', '.join(unknown)} not scored per query in both runs "
            f"(available: {', '.join(available) or 'none'})"
        )
    pairs: dict[str, dict[str, tuple[float, float]]] = {}
    results: list[MetricComparison] = []
    for name in names:
        pairs[name] = {
            qid: (rows_a[qid][name], rows_b[qid][name])
            for qid in shared
            if name in rows_a[qid] and name in rows_b[qid]
        }
        spec = METRICS.get(name) or MetricSpec(_is_binary(pairs[name]), higher_is_better=True)
        values = list(pairs[name].values())
        results.append(
            paired_comparison(
                [x for x, _ in values],
                [y for _, y in values],
                metric=name,
                binary=spec.binary,
                higher_is_better=spec.higher_is_better,
            )
        )
    return RunComparison(
        run_a=a.id,
        run_b=b.id,
        label_a=a.label,
        label_b=b.label,
        dataset=a.dataset,
        dataset_fingerprint=a.dataset_fingerprint,
        queries=len(shared),
        metrics=tuple(results),
        pairs=pairs,
    )


def paired_comparison(
    a: Sequence[float],
    b: Sequence[float],
    *,
    metric: str = "",
    binary: bool = False,
    higher_is_better: bool = True,
) -> MetricComparison:
    """B against A, pair by pair (``a[i]`` and ``b[i]`` are the same query's scores)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    d = y - x
    n = int(d.size)
    sign = 1 if higher_is_better else -1
    b_wins, a_wins = int(np.sum(sign * d > 0)), int(np.sum(sign * d < 0))
    mean_a, mean_b = (float(x.mean()), float(y.mean())) if n else (math.nan, math.nan)
    difference = float(d.mean()) if n else math.nan
    low, high, t_p = _paired_t(d)
    wilcoxon_p = _wilcoxon(d)
    mcnemar_p = _mcnemar(x, y) if binary else None
    test: Test = "mcnemar_exact" if binary else "paired_t"
    p = mcnemar_p if mcnemar_p is not None else t_p
    verdict: Verdict = "no_difference"
    if n < 2:
        verdict = "not_enough_data"
    elif p < ALPHA:
        verdict = "b_better" if (difference > 0) == higher_is_better else "a_better"
    return MetricComparison(
        metric=metric,
        n=n,
        mean_a=mean_a,
        mean_b=mean_b,
        difference=difference,
        ci_low=low,
        ci_high=high,
        t_p=t_p,
        wilcoxon_p=wilcoxon_p,
        mcnemar_p=mcnemar_p,
        b_wins=b_wins,
        ties=n - b_wins - a_wins,
        a_wins=a_wins,
        test=test,
        p_value=p,
        higher_is_better=higher_is_better,
        verdict=verdict,
    )


def _paired_t(d: np.ndarray) -> tuple[float, float, float]:
    """(CI low, CI high, two-sided p) of the mean difference; constant differences are
    certain: p 1 when all zero, else 0."""
    if d.size < 2:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if _constant(d):
        return mean, mean, 1.0 if mean == 0 else 0.0
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    half = float(stats.t.ppf(1 - ALPHA / 2, d.size - 1)) * se
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # precision notes on near-ties
        p = float(stats.ttest_rel(d, np.zeros_like(d)).pvalue)
    return mean - half, mean + half, p


def _wilcoxon(d: np.ndarray) -> float:
    """Two-sided signed-rank p with zero differences dropped (``zero_method="wilcox"``); 1
    when every difference is zero."""
    if d.size < 2:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # e.g. the normal approximation's notes
        return float(stats.wilcoxon(d, zero_method="wilcox").pvalue)


def _mcnemar(x: np.ndarray, y: np.ndarray) -> float:
    """Exact McNemar: a two-sided binomial test of the discordant pairs at 1/2; 1 when none."""
    if x.size < 2:
        return math.nan
    only_a = int(np.sum((x > 0.5) & (y <= 0.5)))
    only_b = int(np.sum((x <= 0.5) & (y > 0.5)))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def _constant(d: np.ndarray) -> bool:
    return float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max()))


def comparable_scores(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each query's scores plus the abstention rate that applies to it."""
    rows: dict[str, dict[str, float]] = {}
    for qid, scores in per_query.items():
        row = {k: float(v) for k, v in scores.items() if k not in _NOT_COMPARED}
        if "abstained" in scores and "answerable" in scores:
            key = "has_answer_abstention" if scores["answerable"] else "no_answer_abstention"
            row[key] = float(scores["abstained"])
        rows[qid] = row
    return rows


def _metric_names(
    rows_a: Mapping[str, Mapping[str, float]],
    rows_b: Mapping[str, Mapping[str, float]],
    shared: Sequence[str],
) -> list[str]:
    present = {k for q in shared for k in rows_a[q] if k in rows_b[q]}
    known = [name for name in METRICS if name in present]
    return known + sorted(present - set(METRICS))


def _is_binary(pairs: Mapping[str, tuple[float, float]]) -> bool:
    return bool(pairs) and all(v in (0.0, 1.0) for pair in pairs.values() for v in pair)


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()
    }
