"""Per-query retrieval scores: the same figures evaluate_run averages, query by query."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragserve.eval.metrics import evaluate_run, score_queries

QRELS = {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 1}, "q3": {"d4": 0}, "q4": {"d5": 1}}
RUN = {"q1": ["d2", "d9", "d1"], "q2": ["d8", "d3"], "q3": ["d4"]}


def test_scores_by_hand() -> None:
    """q2 finds its document at rank 2: RR 1/2, nDCG 1/log2(3), recall 1."""
    scores = score_queries(RUN, QRELS)
    assert scores["q2"]["mrr@10"] == 0.5
    assert scores["q2"]["ndcg@10"] == pytest.approx(1 / 1.5849625007211562)
    assert scores["q2"]["recall@100"] == 1.0


def test_unscorable_queries_count_as_zero() -> None:
    """A query without relevant documents, or missing from the run, scores 0 everywhere."""
    scores = score_queries(RUN, QRELS)
    assert scores["q3"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    assert scores["q4"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_an_unknown_metric_is_refused() -> None:
    """Only the metrics evaluate_run knows."""
    with pytest.raises(ValueError, match="unknown metrics"):
        score_queries(RUN, QRELS, [("map", 10)])


docs = st.sampled_from([f"d{i}" for i in range(8)])


@given(
    qrels=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.dictionaries(docs, st.integers(0, 2), min_size=1, max_size=4),
        min_size=1,
    ),
    run=st.dictionaries(st.sampled_from(["a", "b", "c", "e"]), st.lists(docs, max_size=10)),
)
def test_the_mean_of_per_query_scores_is_the_aggregate(
    qrels: dict[str, dict[str, int]], run: dict[str, list[str]]
) -> None:
    """Averaging score_queries over qrels' queries gives evaluate_run's figure."""
    scores = score_queries(run, qrels)
    aggregate = evaluate_run(run, qrels)
    assert set(scores) == set(qrels)
    for key in ("ndcg@10", "recall@100", "mrr@10"):
        mean = sum(row[key] for row in scores.values()) / len(scores)
        assert mean == pytest.approx(aggregate[key])
