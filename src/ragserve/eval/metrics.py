"""Retrieval and extractive-QA metrics as pure functions.

Retrieval metrics follow ``trec_eval`` (through ``pytrec_eval``, which BEIR uses), so figures are
comparable with published BEIR tables:

* a document is relevant when its judged grade is ``> 0`` (pytrec_eval's ``relevance_level=1``);
* ``ranked`` is the system's ranking, best first; repeated ids are dropped, keeping the first
  occurrence (trec_eval rejects duplicates outright, pytrec_eval cannot represent them);
* the top ``k`` is ``unique(ranked)[:k]``; when fewer than ``k`` documents were returned the
  missing slots count as non-relevant (trec_eval's ``P.k`` convention).

Each per-query retrieval function raises ``ValueError`` when ``relevant`` holds no document with a
grade ``> 0`` (recall, nDCG and F1 would be 0/0) or when ``k < 1``. :func:`evaluate_run` decides
what such queries count for at the dataset level.

QA metrics reproduce the official SQuAD v2.0 evaluation script (``evaluate-v2.0.py``).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "evaluate_run",
    "exact_match",
    "f1_at_k",
    "hit_rate_at_k",
    "ndcg_at_k",
    "normalize_answer",
    "precision_at_k",
    "recall_at_k",
    "reciprocal_rank",
    "score_queries",
    "token_f1",
]

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_NAMES: tuple[str, ...] = ("ndcg", "mrr", "precision", "recall", "f1", "hit_rate")
PER_QUERY_METRICS: tuple[tuple[str, int], ...] = (("ndcg", 10), ("recall", 100), ("mrr", 10))


def _top_k(ranked: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids of ``ranked``, in order (duplicates keep their first rank)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def _relevant_ids(relevant: Mapping[str, int]) -> set[str]:
    ids = {doc_id for doc_id, grade in relevant.items() if grade > 0}
    if not ids:
        raise ValueError(
            "the query has no relevant document (no grade > 0); "
            "filter it out or use evaluate_run, which scores such queries as 0"
        )
    return ids


def _hits(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> tuple[int, int]:
    """(relevant documents in the top k, relevant documents in total)."""
    relevant_ids = _relevant_ids(relevant)
    top = _top_k(ranked, k)
    return sum(1 for doc_id in top if doc_id in relevant_ids), len(relevant_ids)


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """P@k = |relevant ∩ top_k| / k.

    The denominator is ``k`` even when fewer than ``k`` documents were returned (trec_eval ``P``).
    """
    hits, _ = _hits(ranked, relevant, k)
    return hits / k


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """R@k = |relevant ∩ top_k| / |relevant| (trec_eval ``recall``)."""
    hits, total = _hits(ranked, relevant, k)
    return hits / total


def f1_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """F1@k = 2·P@k·R@k / (P@k + R@k), and 0 when there is no hit."""
    hits, total = _hits(ranked, relevant, k)
    if hits == 0:
        return 0.0
    precision, recall = hits / k, hits / total
    return 2 * precision * recall / (precision + recall)


def reciprocal_rank(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """RR@k = 1 / rank of the first relevant document in top_k (1-based), 0 if none.

    Its mean over queries is MRR@k, as BEIR's ``mrr`` custom metric computes it.
    """
    relevant_ids = _relevant_ids(relevant)
    for rank, doc_id in enumerate(_top_k(ranked, k), start=1):
        if doc_id in relevant_ids:
            return 1.0 / rank
    return 0.0


def hit_rate_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Hit@k = 1 if any relevant document is in top_k else 0 (BEIR's ``top_k_accuracy``)."""
    hits, _ = _hits(ranked, relevant, k)
    return 1.0 if hits else 0.0


def _dcg(gains: Iterable[int]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1) if gain > 0)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """nDCG@k exactly as trec_eval's ``ndcg_cut.k`` (what BEIR reports as NDCG@k).

    ``DCG@k = Σ_{r=1..k} g(d_r) / log2(r + 1)`` with linear gain ``g(d) = grade(d)`` for graded
    ``> 0`` documents and 0 otherwise (not the ``2^grade − 1`` variant).
    ``IDCG@k`` is the DCG@k of the ideal ranking: every judged document with grade ``> 0``
    sorted by grade, descending — including relevant documents the system never returned.
    ``nDCG@k = DCG@k / IDCG@k``.
    """
    _relevant_ids(relevant)
    top = _top_k(ranked, k)
    dcg = _dcg(relevant.get(doc_id, 0) for doc_id in top)
    ideal = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
    return dcg / _dcg(ideal)


_PER_QUERY = {
    "ndcg": ndcg_at_k,
    "mrr": reciprocal_rank,
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "hit_rate": hit_rate_at_k,
}


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean of every metric at every cutoff, over the queries of ``qrels``.

    Returns keys ``"<metric>@<k>"`` for metric in ``ndcg, mrr, precision, recall, f1, hit_rate``
    (e.g. ``"ndcg@10"``, ``"mrr@10"``, ``"recall@100"``), unrounded.

    The denominator is the number of queries in ``qrels``, like ``trec_eval -c``:

    * a query of ``qrels`` missing from ``run`` scores 0 on every metric (BEIR instead averages
      over the queries present in both, which flatters a run that skipped queries);
    * a query whose judgments are all ``<= 0`` scores 0, as pytrec_eval scores it;
    * queries of ``run`` absent from ``qrels`` are ignored (they cannot be judged).
    """
    if not qrels:
        raise ValueError("qrels is empty: there is no query to evaluate")
    cutoffs = sorted(set(ks))
    if not cutoffs or cutoffs[0] < 1:
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {list(ks)}")
    totals = {f"{name}@{k}": 0.0 for name in METRIC_NAMES for k in cutoffs}
    for qid, relevant in qrels.items():
        ranked = run.get(qid)
        if not ranked or not any(grade > 0 for grade in relevant.values()):
            continue
        for name, metric in _PER_QUERY.items():
            for k in cutoffs:
                totals[f"{name}@{k}"] += metric(ranked, relevant, k)
    return {key: total / len(qrels) for key, total in totals.items()}


def score_queries(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[tuple[str, int]] = PER_QUERY_METRICS,
) -> dict[str, dict[str, float]]:
    """Each query of ``qrels``: ``{"<metric>@<k>": score}`` for the given (metric, k) pairs.

    Scores count like :func:`evaluate_run` (0 for a query missing from ``run`` or without a
    relevant document), so the mean over queries equals its aggregate figure.
    """
    unknown = sorted({name for name, _ in metrics} - set(_PER_QUERY))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRIC_NAMES)}")
    scores: dict[str, dict[str, float]] = {}
    for qid, relevant in qrels.items():
        ranked = run.get(qid) or ()
        judged = bool(ranked) and any(grade > 0 for grade in relevant.values())
        scores[qid] = {
            f"{name}@{k}": _PER_QUERY[name](ranked, relevant, k) if judged else 0.0
            for name, k in metrics
        }
    return scores


# --- Extractive QA (SQuAD v2.0 official evaluation) -------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop ASCII punctuation, drop articles, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _gold_answers(golds: Iterable[str]) -> list[str]:
    # Official v2 rule: golds that normalise to "" are dropped; if none is left the question is
    # unanswerable and the only correct prediction is one that normalises to "".
    return [gold for gold in golds if normalize_answer(gold)] or [""]


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """EM = max over golds of [normalize(prediction) == normalize(gold)].

    For an unanswerable question (``golds`` empty) EM is 1 iff the prediction normalises to ""
    (abstaining with ``""``; ``"The."`` also counts, exactly as in the official script).
    """
    predicted = normalize_answer(prediction)
    return max(float(predicted == normalize_answer(gold)) for gold in _gold_answers(golds))


def _f1(prediction_tokens: list[str], gold: str) -> float:
    gold_tokens = normalize_answer(gold).split()
    if not gold_tokens or not prediction_tokens:
        return float(gold_tokens == prediction_tokens)
    common = sum((Counter(gold_tokens) & Counter(prediction_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    """Token F1 = max over golds of 2·P·R/(P+R) on normalised whitespace tokens.

    ``P = |pred ∩ gold| / |pred|`` and ``R = |pred ∩ gold| / |gold|`` with multiset intersection.
    When either side has no token the score is 1 if both are empty, else 0 — so, as for
    :func:`exact_match`, an unanswerable question scores 1 only for an empty prediction.
    """
    prediction_tokens = normalize_answer(prediction).split()
    return max(_f1(prediction_tokens, gold) for gold in _gold_answers(golds))
