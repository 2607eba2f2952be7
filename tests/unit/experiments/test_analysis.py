"""Experiment analysis over synthetic outcomes: verdicts, false alarms, SRM, feedback, JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pytest

from ragserve.experiments.analysis import analyze, wilson_interval
from ragserve.store.experiments import (
    ExperimentRecord,
    Feedback,
    FeedbackKind,
    OutcomeWithFeedback,
    QueryOutcome,
    Variant,
)


def experiment(shares: Sequence[tuple[str, float]] = (("a", 0.5), ("b", 0.5))) -> ExperimentRecord:
    variants = tuple(Variant(name, f"cfg-{name}", 1, share) for name, share in shares)
    return ExperimentRecord("exp-1", "t1", "mmr-vs-rrf", "docs", variants, state="running")


def row(
    variant: str,
    number: int,
    *,
    total_ms: float = 100.0,
    tokens: int = 300,
    cached: bool = False,
    sources_found: bool = True,
    abstained: bool = False,
    feedback: tuple[FeedbackKind, int] | None = None,
) -> OutcomeWithFeedback:
    """One outcome; its stages split ``total_ms`` (a cached answer has none but the cache)."""
    answer_id = f"{variant}-{number}"
    stages = {"cache": 1.0, "total": total_ms}
    if not cached:
        stages = {
            "embed": 0.1 * total_ms,
            "retrieve": 0.2 * total_ms,
            "generate": 0.7 * total_ms,
            "total": total_ms,
        }
    outcome = QueryOutcome(
        id=answer_id,
        tenant="t1",
        collection="docs",
        config_hash=f"hash-{variant}",
        experiment_id="exp-1",
        variant=variant,
        subject_hash=f"subject-{answer_id}",
        stages_ms=stages,
        prompt_tokens=tokens - 50,
        completion_tokens=50,
        cached=cached,
        sources_found=sources_found,
        abstained=abstained,
    )
    judged = Feedback(answer_id, "t1", feedback[0], feedback[1]) if feedback else None
    return OutcomeWithFeedback(outcome, judged)


def latency_rows(
    rng: np.random.Generator, variant: str, n: int, *, median_ms: float
) -> list[OutcomeWithFeedback]:
    """Log-normal latencies around ``median_ms`` (a realistic right-skewed shape)."""
    latencies = rng.lognormal(np.log(median_ms), 0.4, n)
    return [row(variant, i, total_ms=float(ms)) for i, ms in enumerate(latencies)]


def test_a_genuinely_faster_variant_wins_on_latency() -> None:
    """Variant b 30% faster in every stage: b_better on latency_ms with p < 0.01."""
    rng = np.random.default_rng(1)
    rows = latency_rows(rng, "a", 400, median_ms=800) + latency_rows(rng, "b", 400, median_ms=560)
    comparison = analyze(experiment(), rows).comparisons[0]
    latency = comparison.metrics["latency_ms"]
    assert (latency.verdict, latency.direction) == ("b_better", "lower_is_better")
    assert latency.p_value < 0.01
    assert latency.ci_high < 0
    assert latency.relative == pytest.approx(-0.3, abs=0.05)
    assert comparison.metrics["generate_ms"].verdict == "b_better"
    assert re.match(r"variant b: latency_ms \d\d% lower \(p<0\.001\), ", comparison.summary)
    assert comparison.summary.endswith(", thumbs_up not enough data")  # no feedback yet


def test_identical_variants_rarely_raise_a_false_alarm() -> None:
    """Same distributions, 100 seeds: each metric says no_difference in at least 90 of them."""
    quiet: dict[str, int] = {}
    for seed in range(100):
        rng = np.random.default_rng(seed)
        rows = [
            row(
                variant,
                i,
                total_ms=float(rng.lognormal(6.0, 0.4)),
                tokens=int(rng.integers(200, 400)),
                cached=bool(rng.random() < 0.2),
                sources_found=bool(rng.random() < 0.8),
                abstained=bool(rng.random() < 0.1),
                feedback=feedback(rng, i),
            )
            for variant in ("a", "b")
            for i in range(120)
        ]
        for name, metric in analyze(experiment(), rows).comparisons[0].metrics.items():
            quiet[name] = quiet.get(name, 0) + (metric.verdict == "no_difference")
    assert {name: count for name, count in quiet.items() if count < 90} == {}
    assert len(quiet) == 11  # every metric (no reranker) was compared


def feedback(rng: np.random.Generator, number: int) -> tuple[FeedbackKind, int] | None:
    """A third of answers rated by thumbs (70% up), a third scored 1-5, a third not judged."""
    if number % 3 == 0:
        return None
    if number % 3 == 1:
        return "thumbs", int(rng.random() < 0.7)
    return "score", int(rng.integers(1, 6))


def test_a_sample_ratio_mismatch_is_flagged() -> None:
    """2000 subjects split 60/40 under a 50/50 configuration: SRM p far below 0.001."""
    rows = [row("a", i) for i in range(1200)] + [row("b", i) for i in range(800)]
    srm = analyze(experiment(), rows).sample_ratio
    assert (srm.status, srm.unit, srm.counts) == ("mismatch", "subjects", {"a": 1200, "b": 800})
    assert srm.p_value is not None
    assert srm.p_value < 1e-3
    assert srm.observed_shares == {"a": 0.6, "b": 0.4}


def test_a_fair_split_is_not_flagged() -> None:
    """Subjects assigned at random 50/50 (seeded): no SRM."""
    rng = np.random.default_rng(5)
    rows = [row("a" if rng.random() < 0.5 else "b", i) for i in range(2000)]
    srm = analyze(experiment(), rows).sample_ratio
    assert srm.status == "ok"


def test_srm_counts_subjects_not_queries() -> None:
    """One heavy user in b (500 queries) does not make a 50/50 split of 400 subjects a mismatch."""
    rows = [row("a", i) for i in range(200)] + [row("b", i) for i in range(200)]
    heavy = row("b", 0)
    rows += [OutcomeWithFeedback(heavy.outcome, None) for _ in range(500)]
    analysis = analyze(experiment(), rows)
    assert (analysis.sample_ratio.status, analysis.sample_ratio.counts) == (
        "ok",
        {"a": 200, "b": 200},
    )
    assert (analysis.variants[1].count, analysis.variants[1].subjects) == (700, 200)


def test_srm_uses_the_configured_shares() -> None:
    """A 70/30 configuration observed 70/30 is fine; 50/50 observed under it is not."""
    shares = (("a", 0.7), ("b", 0.3))
    fair = [row("a", i) for i in range(700)] + [row("b", i) for i in range(300)]
    even = [row("a", i) for i in range(500)] + [row("b", i) for i in range(500)]
    assert analyze(experiment(shares), fair).sample_ratio.status == "ok"
    assert analyze(experiment(shares), even).sample_ratio.status == "mismatch"


def test_thumbs_up_is_a_rate_among_rated_answers_only() -> None:
    """3 up and 1 down among 10 answers: thumbs_up is 3/4; scores average the scored answers."""
    rows = [row("a", i) for i in range(10)]
    rows[0:4] = [row("a", i, feedback=("thumbs", int(i < 3))) for i in range(4)]
    rows[4:6] = [row("a", i, feedback=("score", score)) for i, score in ((4, 5), (5, 2))]
    metrics = analyze(experiment(), rows).variants[0].metrics
    thumbs = metrics["thumbs_up"]
    assert (thumbs.count, thumbs.successes, thumbs.value) == (4, 3, 0.75)
    assert (thumbs.ci_low, thumbs.ci_high) == pytest.approx(wilson_interval(3, 4))
    assert (metrics["score"].count, metrics["score"].value) == (2, 3.5)
    assert (metrics["sources_found"].count, metrics["sources_found"].value) == (10, 1.0)


def test_cached_answers_count_in_latency_but_not_in_uncached_latency() -> None:
    """A 5 ms cache hit lowers latency_ms; latency_ms_uncached and stages keep the pipeline's."""
    rows = [row("a", i, total_ms=100.0) for i in range(4)] + [
        row("a", 9, total_ms=5.0, cached=True)
    ]
    metrics = analyze(experiment(), rows).variants[0].metrics
    assert metrics["latency_ms"].value == pytest.approx(81.0)
    assert (metrics["latency_ms_uncached"].count, metrics["latency_ms_uncached"].value) == (
        4,
        100.0,
    )
    assert metrics["embed_ms"].count == 4
    assert metrics["cache_hit"].value == pytest.approx(0.2)
    assert "rerank_ms" not in metrics  # no variant ran a reranker


def test_a_cache_that_hides_a_slower_pipeline_is_visible() -> None:
    """b answers half from cache but its pipeline is slower: uncached latency says a_better."""
    rng = np.random.default_rng(3)
    rows = latency_rows(rng, "a", 300, median_ms=500)
    for i in range(300):
        cached = i % 2 == 0
        ms = 5.0 if cached else float(rng.lognormal(np.log(700), 0.3))
        rows.append(row("b", i, total_ms=ms, cached=cached))
    metrics = analyze(experiment(), rows).comparisons[0].metrics
    assert metrics["latency_ms"].verdict == "b_better"
    assert metrics["latency_ms_uncached"].verdict == "a_better"
    assert metrics["cache_hit"].verdict == "different"  # informational: neither better nor worse
    assert metrics["cache_hit"].direction == "informational"


def test_rate_directions() -> None:
    """More abstentions are worse, more sources found are better."""
    rows = [row("a", i, abstained=i < 20, sources_found=i < 300) for i in range(400)]
    rows += [row("b", i, abstained=i < 80, sources_found=i < 380) for i in range(400)]
    metrics = analyze(experiment(), rows).comparisons[0].metrics
    assert (metrics["abstained"].verdict, metrics["sources_found"].verdict) == (
        "a_better",
        "b_better",
    )
    assert metrics["sources_found"].difference == pytest.approx(0.2)
    assert (
        "sources_found 20.0 pts higher (p<0.001)"
        in analyze(experiment(), rows).comparisons[0].summary
    )


def test_an_empty_variant_has_not_enough_data() -> None:
    """No outcomes for b: every comparison is not_enough_data and nothing raises."""
    analysis = analyze(experiment(), [row("a", i) for i in range(50)])
    b = analysis.variants[1]
    assert (b.count, b.metrics["latency_ms"].count, b.metrics["latency_ms"].value) == (0, 0, None)
    verdicts = {m.verdict for m in analysis.comparisons[0].metrics.values()}
    assert verdicts == {"not_enough_data"}
    assert analysis.comparisons[0].summary == "variant b: not enough data"


def test_no_outcomes_at_all() -> None:
    """An experiment that never served: SRM not_enough_data, shares None, valid JSON."""
    analysis = analyze(experiment(), [])
    assert analysis.sample_ratio.status == "not_enough_data"
    assert analysis.sample_ratio.observed_shares == {"a": None, "b": None}
    json.dumps(analysis.to_dict(), allow_nan=False)


def test_rows_of_unknown_variants_are_ignored() -> None:
    """An outcome for a variant not in the experiment is counted as ignored, not analysed."""
    rows = [row("a", 1), row("b", 1), row("zombie", 1)]
    analysis = analyze(experiment(), rows)
    assert (analysis.total, analysis.ignored) == (2, 1)


def test_to_dict_is_strict_json_with_three_variants() -> None:
    """Empty, single-row and full variants all serialise with allow_nan=False."""
    rows = [row("a", i, feedback=("score", 4)) for i in range(30)] + [row("b", 0)]
    shares = (("a", 0.4), ("b", 0.3), ("c", 0.3))
    data = analyze(experiment(shares), rows).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert list(data) == [
        "experiment_id",
        "experiment",
        "collection",
        "state",
        "alpha",
        "control",
        "total",
        "ignored",
        "variants",
        "comparisons",
        "sample_ratio",
    ]
    assert [c["variant"] for c in data["comparisons"]] == ["b", "c"]
    assert data["comparisons"][0]["metrics"]["latency_ms"]["p_value"] is None


def test_wilson_interval_stays_inside_zero_and_one() -> None:
    """0 of 10 and 10 of 10: the interval is not degenerate and stays within [0, 1]."""
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert 0.2 < high < 0.35
    low, high = wilson_interval(10, 10)
    assert 0.65 < low < 0.8
    assert high == 1.0
