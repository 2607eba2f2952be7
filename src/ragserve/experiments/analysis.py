"""An experiment's recorded outcomes analysed: every metric summarised per variant, every
variant compared with the control (the first variant) with a verdict, and a
sample-ratio-mismatch guard.

A cached answer counts in ``latency_ms`` (users waited that long) and is left out of
``latency_ms_uncached``, so a variant whose answers are cached more often cannot hide a
slower pipeline. Stage metrics (``embed_ms`` …) cover the answers that ran the stage.

``alpha`` sets the verdicts and the per-variant intervals; the interval of a difference and
the minimum detectable effect are the stats module's (``stats.ALPHA``, ``stats.POWER``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from ragserve.experiments.stats import (
    ALPHA,
    Comparison,
    Summary,
    Verdict,
    compare_means,
    compare_rates,
    summarize,
)
from ragserve.store.experiments import ExperimentRecord, OutcomeWithFeedback

Direction = Literal["lower_is_better", "higher_is_better", "informational"]
MetricVerdict = Literal[Verdict, "different"]
"""``different``: a significant change in an informational metric (no better or worse)."""
SrmStatus = Literal["ok", "mismatch", "not_enough_data"]

STAGES = ("embed", "retrieve", "rerank", "generate")
MEAN_METRICS: dict[str, Direction] = {
    "latency_ms": "lower_is_better",
    "latency_ms_uncached": "lower_is_better",
    **{f"{stage}_ms": "lower_is_better" for stage in STAGES},
    "tokens": "lower_is_better",
    "score": "higher_is_better",
}
RATE_METRICS: dict[str, Direction] = {
    "cache_hit": "informational",
    "sources_found": "higher_is_better",
    "abstained": "lower_is_better",
    "thumbs_up": "higher_is_better",
}
HEADLINE = frozenset(
    {"latency_ms", "latency_ms_uncached", "tokens", "sources_found", "abstained", "thumbs_up"}
    | {"score", "cache_hit"}
)
"""What a comparison's summary line always mentions; a stage only when it changed."""
QUANTILE_LEVELS = tuple(range(0, 101, 5))
"""The quantiles kept per mean metric: enough to draw its distribution without the rows."""
SRM_THRESHOLD = 1e-3
SRM_MIN_EXPECTED = 5  # chi-square's approximation needs about five expected per variant


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one variant: ``value`` is the mean (or the rate, ``successes`` of
    ``count``) with its interval; ``summary`` holds a mean metric's spread and percentiles,
    ``quantiles`` its p0, p5 … p100."""

    kind: Literal["mean", "rate"]
    count: int
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    summary: Summary | None = None
    successes: int | None = None
    quantiles: dict[str, float] | None = None


@dataclass(frozen=True)
class VariantAnalysis:
    name: str
    config: str
    share: float
    count: int
    subjects: int
    observed_share: float | None
    metrics: dict[str, MetricSummary]


@dataclass(frozen=True)
class MetricComparison:
    """The variant against the control on one metric: ``difference`` is variant − control
    (rates in fractions), ``relative`` the difference over the control's mean."""

    kind: Literal["mean", "rate"]
    direction: Direction
    test: str
    control_value: float | None
    variant_value: float | None
    difference: float
    relative: float | None
    ci_low: float
    ci_high: float
    p_value: float
    minimum_detectable_effect: float
    verdict: MetricVerdict


@dataclass(frozen=True)
class VariantComparison:
    variant: str
    control: str
    metrics: dict[str, MetricComparison]
    summary: str


@dataclass(frozen=True)
class SampleRatioCheck:
    """Observed counts (of ``unit``) against the configured shares, chi-square tested."""

    unit: Literal["subjects", "queries"]
    counts: dict[str, int]
    observed_shares: dict[str, float | None]
    chi2: float | None
    p_value: float | None
    status: SrmStatus
    threshold: float = SRM_THRESHOLD


@dataclass(frozen=True)
class ExperimentAnalysis:
    experiment_id: str
    experiment: str
    collection: str
    state: str
    alpha: float
    control: str
    total: int
    ignored: int
    """Rows of no configured variant (not analysed)."""
    variants: tuple[VariantAnalysis, ...]
    comparisons: tuple[VariantComparison, ...]
    sample_ratio: SampleRatioCheck

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict JSON (no NaN or infinity: a missing number is ``None``)."""
        strict: dict[str, Any] = _strict(asdict(self))
        return strict


@dataclass
class _Samples:
    means: dict[str, list[float]]
    rates: dict[str, list[bool]]
    subjects: set[str]
    rows: int = 0
    anonymous: int = 0


def analyze(
    experiment: ExperimentRecord, rows: Sequence[OutcomeWithFeedback], *, alpha: float = ALPHA
) -> ExperimentAnalysis:
    """Summaries, comparisons with the control, and the SRM check over ``rows``."""
    samples = {v.name: _empty_samples() for v in experiment.variants}
    ignored = 0
    for row in rows:
        target = samples.get(row.outcome.variant or "")
        if target is None:
            ignored += 1
        else:
            _collect(target, row)
    srm = _sample_ratio(experiment, samples)
    control = experiment.variants[0].name
    names = _metric_names(samples.values())
    variants = tuple(
        VariantAnalysis(
            name=v.name,
            config=f"{v.config_name}@{v.config_version}",
            share=v.share,
            count=samples[v.name].rows,
            subjects=len(samples[v.name].subjects),
            observed_share=srm.observed_shares[v.name],
            metrics=_summaries(samples[v.name], names, alpha),
        )
        for v in experiment.variants
    )
    comparisons = tuple(
        _compare(control, samples[control], v.name, samples[v.name], variants[0], alpha)
        for v in experiment.variants[1:]
    )
    return ExperimentAnalysis(
        experiment_id=experiment.id,
        experiment=experiment.name,
        collection=experiment.collection,
        state=experiment.state,
        alpha=alpha,
        control=control,
        total=len(rows) - ignored,
        ignored=ignored,
        variants=variants,
        comparisons=comparisons,
        sample_ratio=srm,
    )


def wilson_interval(successes: int, total: int, *, alpha: float = ALPHA) -> tuple[float, float]:
    """The Wilson score interval of a rate: inside [0, 1] and sound near 0 and 1."""
    z = float(sps.norm.ppf(1 - alpha / 2))
    rate = successes / total
    denominator = 1 + z**2 / total
    centre = (rate + z**2 / (2 * total)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / total + z**2 / (4 * total**2)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds, not 1 − 1e-16
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def _empty_samples() -> _Samples:
    means: dict[str, list[float]] = {name: [] for name in MEAN_METRICS}
    return _Samples(means, {name: [] for name in RATE_METRICS}, set())


def _collect(samples: _Samples, row: OutcomeWithFeedback) -> None:
    outcome, feedback = row.outcome, row.feedback
    samples.rows += 1
    if outcome.subject_hash:
        samples.subjects.add(outcome.subject_hash)
    else:
        samples.anonymous += 1
    total = outcome.stages_ms.get("total")
    if total is not None:
        samples.means["latency_ms"].append(total)
        if not outcome.cached:
            samples.means["latency_ms_uncached"].append(total)
    for stage in STAGES:
        if stage in outcome.stages_ms:
            samples.means[f"{stage}_ms"].append(outcome.stages_ms[stage])
    samples.means["tokens"].append(outcome.prompt_tokens + outcome.completion_tokens)
    samples.rates["cache_hit"].append(outcome.cached)
    samples.rates["sources_found"].append(outcome.sources_found)
    samples.rates["abstained"].append(outcome.abstained)
    if feedback is not None and feedback.kind == "thumbs":
        samples.rates["thumbs_up"].append(feedback.value == 1)
    elif feedback is not None and feedback.kind == "score":
        samples.means["score"].append(feedback.value)


def _metric_names(all_samples: Collection[_Samples]) -> list[str]:
    """Every metric, less the stages no variant ran (a pipeline without a reranker)."""
    stage_metrics = {f"{stage}_ms" for stage in STAGES}
    names = [
        name
        for name in MEAN_METRICS
        if name not in stage_metrics or any(s.means[name] for s in all_samples)
    ]
    return names + list(RATE_METRICS)


def _summaries(samples: _Samples, names: list[str], alpha: float) -> dict[str, MetricSummary]:
    result: dict[str, MetricSummary] = {}
    for name in names:
        if name in MEAN_METRICS:
            values = samples.means[name]
            if not values:
                result[name] = MetricSummary("mean", 0)
                continue
            s = summarize(values, confidence=1 - alpha)
            levels = np.percentile(np.asarray(values, dtype=np.float64), QUANTILE_LEVELS)
            quantiles = {f"p{q}": float(v) for q, v in zip(QUANTILE_LEVELS, levels, strict=True)}
            result[name] = MetricSummary(
                "mean", s.count, s.mean, s.ci_low, s.ci_high, s, quantiles=quantiles
            )
        else:
            flags = samples.rates[name]
            if not flags:
                result[name] = MetricSummary("rate", 0, successes=0)
                continue
            hits = sum(flags)
            low, high = wilson_interval(hits, len(flags), alpha=alpha)
            result[name] = MetricSummary(
                "rate", len(flags), hits / len(flags), low, high, None, hits
            )
    return result


def _compare(
    control: str,
    a: _Samples,
    variant: str,
    b: _Samples,
    control_analysis: VariantAnalysis,
    alpha: float,
) -> VariantComparison:
    metrics: dict[str, MetricComparison] = {}
    for name, baseline in control_analysis.metrics.items():
        if name in MEAN_METRICS:
            direction = MEAN_METRICS[name]
            xs, ys = a.means[name], b.means[name]
            raw = compare_means(xs, ys, higher_is_better=direction != "lower_is_better")
            values = (_mean(xs), _mean(ys))
        else:
            direction = RATE_METRICS[name]
            xs_flags, ys_flags = a.rates[name], b.rates[name]
            raw = compare_rates(sum(xs_flags), len(xs_flags), sum(ys_flags), len(ys_flags))
            values = (_mean(xs_flags), _mean(ys_flags))
        metrics[name] = _metric_comparison(baseline.kind, direction, raw, values, alpha)
    return VariantComparison(variant, control, metrics, _summary_line(variant, metrics))


def _metric_comparison(
    kind: Literal["mean", "rate"],
    direction: Direction,
    raw: Comparison,
    values: tuple[float | None, float | None],
    alpha: float,
) -> MetricComparison:
    control_value, variant_value = values
    relative = None
    if control_value and math.isfinite(raw.difference):
        relative = raw.difference / control_value
    return MetricComparison(
        kind=kind,
        direction=direction,
        test=raw.test,
        control_value=control_value,
        variant_value=variant_value,
        difference=raw.difference,
        relative=relative,
        ci_low=raw.ci_low,
        ci_high=raw.ci_high,
        p_value=raw.p_value,
        minimum_detectable_effect=raw.minimum_detectable_effect,
        verdict=_verdict(raw, direction, alpha),
    )


def _verdict(raw: Comparison, direction: Direction, alpha: float) -> MetricVerdict:
    if raw.verdict == "not_enough_data" or not math.isfinite(raw.p_value):
        return "not_enough_data"
    if raw.p_value >= alpha:
        return "no_difference"
    if direction == "informational":
        return "different"
    variant_higher = raw.difference > 0
    return "b_better" if variant_higher == (direction == "higher_is_better") else "a_better"


def _summary_line(variant: str, metrics: dict[str, MetricComparison]) -> str:
    """Headline metrics always, a stage only when it changed significantly."""
    parts = [
        _describe(name, comparison)
        for name, comparison in metrics.items()
        if name in HEADLINE or comparison.verdict in ("a_better", "b_better", "different")
    ]
    if all(c.verdict == "not_enough_data" for c in metrics.values()):
        return f"variant {variant}: not enough data"
    return f"variant {variant}: " + ", ".join(parts)


def _describe(name: str, c: MetricComparison) -> str:
    if c.verdict == "not_enough_data":
        return f"{name} not enough data"
    p = "p<0.001" if c.p_value < 0.001 else f"p={c.p_value:.2g}"
    if c.verdict == "no_difference":
        return f"{name} no difference ({p}, MDE {_amount(c, c.minimum_detectable_effect)})"
    way = "higher" if c.difference > 0 else "lower"
    return f"{name} {_amount(c, abs(c.difference))} {way} ({p})"


def _amount(c: MetricComparison, amount: float) -> str:
    """Rates in percentage points, means relative to the control when it is not zero."""
    if c.kind == "rate":
        return f"{amount * 100:.1f} pts"
    if c.control_value:
        return f"{amount / abs(c.control_value) * 100:.0f}%"
    return f"{amount:.3g}"


def _sample_ratio(experiment: ExperimentRecord, samples: dict[str, _Samples]) -> SampleRatioCheck:
    """Subjects are the unit of assignment, so they are counted when every row names one;
    query counts (a heavy user weighs more) are the fallback."""
    by_subject = all(s.anonymous == 0 for s in samples.values())
    counts = {name: len(s.subjects) if by_subject else s.rows for name, s in samples.items()}
    total = sum(counts.values())
    observed = {name: (n / total if total else None) for name, n in counts.items()}
    unit: Literal["subjects", "queries"] = "subjects" if by_subject else "queries"
    shares = [v.share for v in experiment.variants]
    expected = [total * share / math.fsum(shares) for share in shares]
    if total == 0 or min(expected) < SRM_MIN_EXPECTED:
        return SampleRatioCheck(unit, counts, observed, None, None, "not_enough_data")
    test = sps.chisquare([counts[v.name] for v in experiment.variants], expected)
    chi2, p = float(test.statistic), float(test.pvalue)
    status: SrmStatus = "mismatch" if p < SRM_THRESHOLD else "ok"
    return SampleRatioCheck(unit, counts, observed, chi2, p, status)


def _mean(values: Sequence[float] | Sequence[bool]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float (a test without data) made ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    return value
