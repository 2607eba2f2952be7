"""Retrieval metrics: hand-computed cases, trec_eval/pytrec_eval conventions, invariants."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragserve.eval.metrics import (
    evaluate_run,
    f1_at_k,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)

Metric = Callable[[Sequence[str], Mapping[str, int], int], float]
ALL_METRICS: list[Metric] = [
    precision_at_k,
    recall_at_k,
    f1_at_k,
    reciprocal_rank,
    ndcg_at_k,
    hit_rate_at_k,
]

# d2 (grade 2) at rank 2, d4 (grade 1) at rank 4; d9 (grade 3) judged but never retrieved;
# d3 is judged non-relevant (grade 0).
RANKED = ["d1", "d2", "d3", "d4", "d5"]
RELEVANT = {"d2": 2, "d4": 1, "d9": 3, "d3": 0}


# --- hand-computed examples --------------------------------------------------------------------


def test_precision_recall_f1_by_hand() -> None:
    """P, R and F1 match the arithmetic for the reference ranking."""
    # top 3 = d1 d2 d3 -> 1 hit (d2; d3 has grade 0); 3 relevant in total (d2, d4, d9)
    assert pytest.approx(1 / 3) == precision_at_k(RANKED, RELEVANT, 3)
    assert pytest.approx(1 / 3) == recall_at_k(RANKED, RELEVANT, 3)
    # F1@3 = 2·(1/3)·(1/3) / (2/3) = 1/3
    assert pytest.approx(1 / 3) == f1_at_k(RANKED, RELEVANT, 3)
    # top 5 -> 2 hits (d2, d4): P = 2/5, R = 2/3, F1 = 2·(2/5)(2/3) / (2/5 + 2/3) = (8/15)/(16/15)
    assert pytest.approx(2 / 5) == precision_at_k(RANKED, RELEVANT, 5)
    assert pytest.approx(2 / 3) == recall_at_k(RANKED, RELEVANT, 5)
    assert pytest.approx(0.5) == f1_at_k(RANKED, RELEVANT, 5)


def test_reciprocal_rank_and_hit_rate_by_hand() -> None:
    """The first relevant document is at rank 2: RR@1 = 0, RR@3 = 1/2; a hit from k = 2."""
    assert reciprocal_rank(RANKED, RELEVANT, 1) == 0.0
    assert pytest.approx(0.5) == reciprocal_rank(RANKED, RELEVANT, 3)
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_rate_at_k(RANKED, RELEVANT, 2) == 1.0


def test_ndcg_by_hand_uses_linear_gain_and_log2_rank_plus_one() -> None:
    """nDCG uses gain = grade and discount log2(rank + 1), with IDCG over all judged docs."""
    # DCG@5  = 2/log2(3) + 1/log2(5)            = 1.26186 + 0.43068 = 1.69254
    # IDCG@5 = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.26186 + 0.5  = 4.76186  (d9 included)
    # nDCG@5 = 1.69254 / 4.76186 = 0.35544
    # (the exponential-gain variant would give (3/log2 3 + 1/log2 5)/(7 + 3/log2 3 + .5) = 0.2474)
    expected = (2 / math.log2(3) + 1 / math.log2(5)) / (3 + 2 / math.log2(3) + 1 / math.log2(4))
    assert pytest.approx(0.35543595158) == expected
    assert pytest.approx(expected) == ndcg_at_k(RANKED, RELEVANT, 5)
    # nDCG@2: DCG = 2/log2(3) = 1.26186; IDCG@2 (ideal cut at 2) = 3 + 1.26186 -> 0.29608
    assert pytest.approx(0.29608191097) == ndcg_at_k(RANKED, RELEVANT, 2)
    assert ndcg_at_k(RANKED, RELEVANT, 1) == 0.0


@pytest.mark.parametrize(
    ("ranked", "k", "expected"),
    [
        # Cases from pytrec_eval's own test suite (tests/pytrec_eval_tests.py), run ranked by score.
        (["d3", "d1", "d2"], 3, 0.5),  # only relevant doc at rank 3: 1/log2(4)
        (["d3", "d1", "d2"], 2, 0.0),
        (["d3", "d1", "d2"], 1, 0.0),
        (["d3", "d1", "d2"], 1000, 0.5),
        (["d2", "d3", "d1"], 1, 1.0),
        (["d1", "d2", "d3"], 1000, 0.6309297535714575),  # rank 2: 1/log2(3)
    ],
)
def test_ndcg_matches_pytrec_eval_reference_values(
    ranked: list[str], k: int, expected: float
) -> None:
    """nDCG reproduces the values pytrec_eval's tests assert for ndcg / ndcg_cut."""
    assert pytest.approx(expected) == ndcg_at_k(ranked, {"d1": 0, "d2": 1, "d3": 0}, k)


# --- edge cases ----------------------------------------------------------------------------------


def test_k_larger_than_the_ranking() -> None:
    """Missing slots count as non-relevant: P divides by k, the others see the whole list."""
    ranked, relevant = ["a", "b"], {"b": 1}
    assert pytest.approx(0.1) == precision_at_k(ranked, relevant, 10)  # 1 hit / 10
    assert recall_at_k(ranked, relevant, 10) == 1.0
    assert pytest.approx(2 * 0.1 * 1 / 1.1) == f1_at_k(ranked, relevant, 10)
    assert reciprocal_rank(ranked, relevant, 10) == 0.5
    assert pytest.approx(1 / math.log2(3)) == ndcg_at_k(ranked, relevant, 10)
    assert hit_rate_at_k(ranked, relevant, 10) == 1.0


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("ranked", [[], ["x", "y", "z"]])
def test_no_hit_scores_zero(metric: Metric, ranked: list[str]) -> None:
    """An empty ranking or one without any relevant document scores 0."""
    assert metric(ranked, {"a": 1, "x": 0}, 5) == 0.0


def test_duplicates_are_counted_once_at_their_first_rank() -> None:
    """A repeated id is dropped, so it neither scores twice nor takes a slot from the next doc."""
    ranked, relevant = ["a", "a", "b", "b"], {"a": 1, "b": 1}
    # unique ranking = a, b -> both relevant docs in the top 2
    assert precision_at_k(ranked, relevant, 2) == 1.0
    assert recall_at_k(ranked, relevant, 2) == 1.0
    assert ndcg_at_k(ranked, relevant, 2) == 1.0
    assert precision_at_k(["x", "x", "b"], {"b": 1}, 2) == 0.5
    assert reciprocal_rank(["x", "x", "b"], {"b": 1}, 2) == 0.5


def test_non_positive_grades_are_not_relevant() -> None:
    """Grades 0 and negative (trec_eval's "unjudged") neither count as hits nor add gain."""
    ranked, relevant = ["neg", "zero", "rel"], {"neg": -1, "zero": 0, "rel": 2}
    assert precision_at_k(ranked, relevant, 2) == 0.0
    assert recall_at_k(ranked, relevant, 3) == 1.0
    assert pytest.approx(1 / math.log2(4)) == ndcg_at_k(ranked, relevant, 3)


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("relevant", [{}, {"a": 0}, {"a": -1, "b": 0}])
def test_query_without_relevant_document_is_rejected(
    metric: Metric, relevant: dict[str, int]
) -> None:
    """Per-query metrics refuse a query with no grade > 0 instead of inventing a 0/0 value."""
    with pytest.raises(ValueError, match="no relevant document"):
        metric(["a", "b"], relevant, 3)


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("k", [0, -1])
def test_non_positive_k_is_rejected(metric: Metric, k: int) -> None:
    """A cut-off below 1 is a caller error."""
    with pytest.raises(ValueError, match="k must be >= 1"):
        metric(["a"], {"a": 1}, k)


# --- aggregation ---------------------------------------------------------------------------------


def test_evaluate_run_by_hand() -> None:
    """Means over every qrels query; missing or unjudgeable queries count 0, extras are ignored."""
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 1}, "q4": {"e": 0}}
    run = {"q1": ["a", "x"], "q2": ["x", "c"], "q5": ["a"]}
    # q1: every metric 1 at k=1,2 except P@2 = 1/2 and F1@2 = 2·.5·1/1.5 = 2/3
    # q2: 0 at k=1; at k=2: nDCG = (1/log2 3)/(1 + 1/log2 3) = 0.38685, RR = 1/2, P = 1/2,
    #     R = 1/2, F1 = 1/2, hit = 1
    # q3 (not in run) and q4 (no relevant doc) add 0; q5 (no qrels) is ignored; divide by 4.
    ndcg_q2 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    expected = {
        "ndcg@1": 1 / 4,
        "ndcg@2": (1 + ndcg_q2) / 4,
        "mrr@1": 1 / 4,
        "mrr@2": (1 + 0.5) / 4,
        "precision@1": 1 / 4,
        "precision@2": (0.5 + 0.5) / 4,
        "recall@1": 1 / 4,
        "recall@2": (1 + 0.5) / 4,
        "f1@1": 1 / 4,
        "f1@2": (2 / 3 + 0.5) / 4,
        "hit_rate@1": 1 / 4,
        "hit_rate@2": (1 + 1) / 4,
    }
    assert pytest.approx(expected) == evaluate_run(run, qrels, ks=(2, 1, 2))


def test_evaluate_run_default_keys() -> None:
    """The default cut-offs are 1, 3, 5, 10 and 100 for every metric."""
    keys = {
        f"{name}@{k}"
        for name in ("ndcg", "mrr", "precision", "recall", "f1", "hit_rate")
        for k in (1, 3, 5, 10, 100)
    }
    assert keys == set(evaluate_run({"q": ["a"]}, {"q": {"a": 1}}))


@pytest.mark.parametrize(
    ("qrels", "ks"),
    [({}, (1,)), ({"q": {"a": 1}}, ()), ({"q": {"a": 1}}, (0, 5))],
)
def test_evaluate_run_rejects_bad_arguments(
    qrels: dict[str, dict[str, int]], ks: tuple[int, ...]
) -> None:
    """Empty qrels or cut-offs, and cut-offs below 1, raise ValueError."""
    with pytest.raises(ValueError, match=r"qrels|ks"):
        evaluate_run({"q": ["a"]}, qrels, ks=ks)


# --- invariants (Hypothesis) ---------------------------------------------------------------------

doc_ids = st.sampled_from([f"d{i}" for i in range(10)])
rankings = st.lists(doc_ids, max_size=15)
judgments = st.dictionaries(doc_ids, st.integers(-1, 3), min_size=1).filter(
    lambda grades: any(grade > 0 for grade in grades.values())
)
cutoffs = st.integers(1, 20)


def unique(ranked: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranked))


def reference_ndcg(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Independent nDCG@k: linear gain, log2(position + 2) with 0-based positions."""

    def dcg(gains: Sequence[int]) -> float:
        return sum(gain / math.log2(position + 2) for position, gain in enumerate(gains))

    gains = [max(relevant.get(doc_id, 0), 0) for doc_id in unique(ranked)[:k]]
    ideal = sorted((max(grade, 0) for grade in relevant.values()), reverse=True)[:k]
    return dcg(gains) / dcg(ideal)


@given(rankings, judgments, cutoffs)
def test_metrics_are_between_zero_and_one(
    ranked: list[str], relevant: dict[str, int], k: int
) -> None:
    """Every metric lies in [0, 1]."""
    for metric in ALL_METRICS:
        assert 0.0 <= metric(ranked, relevant, k) <= 1.0 + 1e-12


@given(rankings, judgments, cutoffs)
def test_ndcg_matches_reference_implementation(
    ranked: list[str], relevant: dict[str, int], k: int
) -> None:
    """ndcg_at_k agrees with an independent linear-gain, log2-discount implementation."""
    assert pytest.approx(reference_ndcg(ranked, relevant, k)) == ndcg_at_k(ranked, relevant, k)


@given(judgments, st.lists(doc_ids, max_size=10), cutoffs)
def test_ideal_ranking_has_ndcg_one(relevant: dict[str, int], tail: list[str], k: int) -> None:
    """Relevant documents sorted by grade, followed by anything else, score nDCG = 1 at every k."""
    ideal = sorted((d for d, grade in relevant.items() if grade > 0), key=lambda d: -relevant[d])
    assert pytest.approx(1.0) == ndcg_at_k(ideal + tail, relevant, k)


@given(rankings, judgments, cutoffs, st.data())
def test_permuting_non_relevant_documents_keeps_ndcg(
    ranked: list[str], relevant: dict[str, int], k: int, data: st.DataObject
) -> None:
    """Shuffling non-relevant documents among their own slots (e.g. below all relevant ones)
    leaves nDCG unchanged."""
    ranking = unique(ranked)
    slots = [i for i, doc_id in enumerate(ranking) if relevant.get(doc_id, 0) <= 0]
    shuffled = data.draw(st.permutations([ranking[i] for i in slots]))
    permuted = list(ranking)
    for slot, doc_id in zip(slots, shuffled, strict=True):
        permuted[slot] = doc_id
    assert pytest.approx(ndcg_at_k(ranking, relevant, k)) == ndcg_at_k(permuted, relevant, k)


@given(rankings, judgments, cutoffs)
def test_precision_times_k_counts_hits(ranked: list[str], relevant: dict[str, int], k: int) -> None:
    """P@k · k is the number of distinct relevant documents in the top k."""
    hits = sum(1 for doc_id in unique(ranked)[:k] if relevant.get(doc_id, 0) > 0)
    assert pytest.approx(hits) == precision_at_k(ranked, relevant, k) * k


@given(rankings, judgments, cutoffs, st.data())
def test_repeating_a_retrieved_document_changes_nothing(
    ranked: list[str], relevant: dict[str, int], k: int, data: st.DataObject
) -> None:
    """Inserting a copy of an already-ranked id after its first occurrence changes no metric."""
    if not ranked:
        return
    source = data.draw(st.integers(0, len(ranked) - 1))
    position = data.draw(st.integers(source + 1, len(ranked)))
    repeated = [*ranked[:position], ranked[source], *ranked[position:]]
    for metric in ALL_METRICS:
        assert metric(ranked, relevant, k) == metric(repeated, relevant, k)


@given(rankings, judgments, cutoffs)
def test_recall_and_hit_rate_never_decrease_with_k(
    ranked: list[str], relevant: dict[str, int], k: int
) -> None:
    """Looking deeper can only find more relevant documents."""
    assert recall_at_k(ranked, relevant, k) <= recall_at_k(ranked, relevant, k + 1)
    assert hit_rate_at_k(ranked, relevant, k) <= hit_rate_at_k(ranked, relevant, k + 1)


@given(st.dictionaries(st.sampled_from(["q1", "q2", "q3"]), rankings, min_size=3), judgments)
def test_evaluate_run_is_the_mean_of_per_query_scores(
    run: dict[str, list[str]], relevant: dict[str, int]
) -> None:
    """With every query judged and run, each aggregate is the plain mean of per-query values."""
    qrels = dict.fromkeys(run, relevant)
    scores = evaluate_run(run, qrels, ks=(3,))
    expected = sum(ndcg_at_k(run[qid], relevant, 3) for qid in run) / len(run)
    assert pytest.approx(expected) == scores["ndcg@3"]
