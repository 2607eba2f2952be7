"""Paired comparison of evaluation runs against values computed by hand."""

from __future__ import annotations

import json
import math

import pytest

from ragserve.errors import InputError
from ragserve.eval.compare import compare_runs, paired_comparison
from ragserve.store.experiments import EvalRunRecord

T_975_DF2 = 4.302652729911275  # Student's t quantile 0.975 with 2 degrees of freedom


def run(
    run_id: str, per_query: dict[str, dict[str, float]], fingerprint: str = "f" * 16
) -> EvalRunRecord:
    return EvalRunRecord(
        id=run_id,
        tenant="default",
        kind="squad",
        dataset="squad-slice",
        dataset_fingerprint=fingerprint,
        config_hash="c" * 16,
        config={},
        metrics={},
        per_query=per_query,
        timing={},
        label=run_id,
    )


def test_paired_t_and_interval_match_the_closed_form() -> None:
    """Differences 1, 2, 3: mean 2, sd 1, t = 2√3 on 2 df, p = 1 − t/√(t² + 2)."""
    result = paired_comparison([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    t = 2 * math.sqrt(3)
    assert result.difference == pytest.approx(2.0)
    assert result.t_p == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    half = T_975_DF2 / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 - half, 2 + half))
    assert (result.mean_a, result.mean_b, result.n) == (0.0, 2.0, 3)
    assert result.test == "paired_t"
    assert result.mcnemar_p is None


def test_wilcoxon_exact_p_for_all_positive_differences() -> None:
    """n positive differences without ties: the exact two-sided p is 2 / 2ⁿ."""
    five = paired_comparison([0.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    six = paired_comparison([0.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert five.wilcoxon_p == pytest.approx(2 / 32)
    assert six.wilcoxon_p == pytest.approx(2 / 64)


def test_wilcoxon_drops_zero_differences() -> None:
    """Zero differences are left out (zero_method wilcox): 3 positive ones give 2/8."""
    result = paired_comparison([1.0, 1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 2.0, 3.0])
    assert result.wilcoxon_p == pytest.approx(2 / 8)
    assert (result.b_wins, result.ties, result.a_wins) == (3, 2, 0)


def test_mcnemar_exact_on_discordant_pairs() -> None:
    """1 pair only A got right, 7 only B, 2 both: p = 2·(C(8,0)+C(8,1))/2⁸ = 18/256."""
    a = [1.0] + [0.0] * 7 + [1.0, 1.0]
    b = [0.0] + [1.0] * 7 + [1.0, 1.0]
    result = paired_comparison(a, b, binary=True)
    assert result.mcnemar_p == pytest.approx(18 / 256)
    assert result.test == "mcnemar_exact"
    assert result.p_value == result.mcnemar_p
    assert result.verdict == "no_difference"
    assert (result.b_wins, result.ties, result.a_wins) == (7, 2, 1)


def test_mcnemar_significant_when_every_discordant_pair_favours_b() -> None:
    """0 against 8 discordant pairs: p = 2/2⁸, so B is better at α = 0.05."""
    result = paired_comparison([0.0] * 8, [1.0] * 8, binary=True)
    assert result.mcnemar_p == pytest.approx(2 / 256)
    assert result.verdict == "b_better"


def test_lower_is_better_turns_wins_and_verdict_around() -> None:
    """For latency, B's larger values are losses and A is the better run."""
    result = paired_comparison(
        [10.0, 11.0, 12.0, 13.0, 14.0], [20.0, 22.0, 23.0, 25.0, 24.0], higher_is_better=False
    )
    assert (result.b_wins, result.ties, result.a_wins) == (0, 0, 5)
    assert result.verdict == "a_better"


def test_identical_scores_are_no_difference_without_warnings() -> None:
    """All differences zero: p-values 1, interval [0, 0], nothing to decide."""
    result = paired_comparison([0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
    assert (result.t_p, result.wilcoxon_p) == (1.0, 1.0)
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.verdict == "no_difference"


def test_a_constant_shift_is_certain() -> None:
    """Every query exactly 0.1 better: the paired t-test has no spread, p is 0."""
    result = paired_comparison([0.2, 0.4, 0.6], [0.3, 0.5, 0.7])
    assert result.t_p == 0.0
    assert result.verdict == "b_better"


def test_fewer_than_two_pairs_is_not_enough_data() -> None:
    """One pair cannot be tested."""
    result = paired_comparison([0.2], [0.9])
    assert result.verdict == "not_enough_data"
    assert math.isnan(result.t_p)


def test_runs_are_compared_on_their_shared_queries() -> None:
    """Queries only one run scored are left out; each metric gets its pairs."""
    a = run("a" * 32, {"q1": {"f1": 0.1}, "q2": {"f1": 0.2}, "q3": {"f1": 0.3}})
    b = run("b" * 32, {"q2": {"f1": 0.5}, "q3": {"f1": 0.9}, "q4": {"f1": 1.0}})
    comparison = compare_runs(a, b)
    assert comparison.queries == 2
    assert comparison.pairs["f1"] == {"q2": (0.2, 0.5), "q3": (0.3, 0.9)}
    assert comparison.metric("f1").difference == pytest.approx(0.45)


def test_abstention_is_split_by_answerability() -> None:
    """Abstaining counts as good on unanswerable questions and bad on answerable ones."""
    rows_a = {
        "q1": {"abstained": 1.0, "answerable": 0.0},
        "q2": {"abstained": 0.0, "answerable": 0.0},
        "q3": {"abstained": 1.0, "answerable": 1.0},
    }
    rows_b = {
        "q1": {"abstained": 1.0, "answerable": 0.0},
        "q2": {"abstained": 1.0, "answerable": 0.0},
        "q3": {"abstained": 0.0, "answerable": 1.0},
    }
    comparison = compare_runs(run("a" * 32, rows_a), run("b" * 32, rows_b))
    names = [m.metric for m in comparison.metrics]
    assert names == ["no_answer_abstention", "has_answer_abstention"]
    assert comparison.pairs["no_answer_abstention"] == {"q1": (1.0, 1.0), "q2": (0.0, 1.0)}
    has_answer = comparison.metric("has_answer_abstention")
    assert (has_answer.b_wins, has_answer.a_wins) == (1, 0)  # B stopped abstaining on q3


def test_runs_of_different_datasets_are_refused() -> None:
    """Different fingerprints: an InputError naming both datasets."""
    a = run("a" * 32, {"q1": {"f1": 0.1}}, fingerprint="1" * 16)
    b = run("b" * 32, {"q1": {"f1": 0.2}}, fingerprint="2" * 16)
    with pytest.raises(InputError, match="different datasets"):
        compare_runs(a, b)


def test_an_unknown_metric_is_refused_with_the_available_ones() -> None:
    """Asking for a metric no query has names the ones there are."""
    a = run("a" * 32, {"q1": {"f1": 0.1}, "q2": {"f1": 0.3}})
    with pytest.raises(InputError, match=r"ndcg@10.*available: f1"):
        compare_runs(a, a, ["ndcg@10"])


def test_worse_lists_the_gate_metrics_a_wins() -> None:
    """B significantly worse on exact match (8 discordant pairs for A), not on F1."""
    per_a = {f"q{i}": {"exact_match": 1.0, "f1": 0.5 + i / 100} for i in range(8)}
    per_b = {
        f"q{i}": {"exact_match": 0.0, "f1": 0.5 + i / 100 + (0.01 if i % 2 else -0.01)}
        for i in range(8)
    }
    comparison = compare_runs(run("a" * 32, per_a), run("b" * 32, per_b))
    assert [m.metric for m in comparison.worse(["exact_match", "f1"])] == ["exact_match"]


def test_the_comparison_serialises_to_strict_json() -> None:
    """NaN becomes null, pairs are lists, and the JSON parses without NaN extensions."""
    a = run("a" * 32, {"q1": {"f1": 0.1}})
    data = compare_runs(a, a).to_dict()
    text = json.dumps(data, allow_nan=False)
    parsed = json.loads(text)
    assert parsed["metrics"][0]["t_p"] is None
    assert parsed["pairs"] == {"f1": {"q1": [0.1, 0.1]}}
    assert parsed["metrics"][0]["verdict"] == "not_enough_data"
