"""Run retrieval and answer evaluations through the real service.

Corpora are indexed under the ``eval`` tenant into a collection named after the corpus
fingerprint and the pipeline hash, so a second run (another mode, another split, another
fusion weight) reuses the index, and indexes of different chunking or embedders coexist.

Each evaluation returns the aggregate figures and every query's scores (for paired tests
between runs) with its timing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ragserve.eval.answer_metrics import citation_correct
from ragserve.eval.beir import BeirDataset
from ragserve.eval.metrics import evaluate_run, exact_match, score_queries, token_f1
from ragserve.eval.squad import SquadDataset, SquadQuestion
from ragserve.types import Answer, IngestOutcome, RetrievalMode, TextDocument

if TYPE_CHECKING:  # the runner drives the service; it is wired by entry points only
    from ragserve.eval.judge import AnswerJudge
    from ragserve.service import RagService

EVAL_TENANT = "eval"
_CITATION = re.compile(r"\s*\[\d+\]")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation measured.

    ``metrics``: the aggregate figures; ``per_query``: each query id's scores (BEIR:
    ``ndcg@10``, ``recall@100``, ``mrr@10``; SQuAD: ``exact_match``, ``f1``, ``abstained``,
    ``answerable``, ``citation_correct`` for answerable questions, judge scores when judged;
    both: ``latency_ms``); ``details``: per-question text worth reading (SQuAD: the
    prediction, and the judge's reasons or failure).
    """

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    index_seconds: float
    query_seconds: float
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def latencies_ms(self) -> list[float]:
        return [scores["latency_ms"] for scores in self.per_query.values()]


@dataclass(frozen=True)
class IndexReport:
    collection: str
    documents: int
    added: int
    unchanged: int
    seconds: float


def index_corpus(
    service: RagService,
    collection: str,
    documents: list[TextDocument],
    on_progress: Progress | None = None,
) -> IndexReport:
    """Index (or reuse) ``documents`` in ``collection`` of the eval tenant."""
    started = time.perf_counter()
    done = 0

    def progress(_: IngestOutcome) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, len(documents))

    outcomes = service.ingest_texts(collection, documents, tenant=EVAL_TENANT, on_progress=progress)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} documents failed to index, e.g. {failed[0].error}")
    return IndexReport(
        collection=collection,
        documents=len(outcomes),
        added=sum(o.status in ("added", "replaced") for o in outcomes),
        unchanged=sum(o.status == "unchanged" for o in outcomes),
        seconds=round(time.perf_counter() - started, 2),
    )


def evaluate_beir(
    service: RagService,
    dataset: BeirDataset,
    *,
    mode: RetrievalMode,
    depth: int = 100,
    on_progress: Progress | None = None,
) -> Evaluation:
    """nDCG/recall/MRR/P/R/F1 at standard cut-offs over the split's queries, and per query
    nDCG@10, Recall@100, MRR@10 and latency; documents are ranked by their best chunk."""
    collection = f"beir-{dataset.fingerprint()}-{service.pipeline_hash[:8]}"
    documents = [
        TextDocument(source=doc_id, text=doc.content, title=doc.title or None)
        for doc_id, doc in dataset.corpus.items()
    ]
    index = index_corpus(service, collection, documents, on_progress)
    run: dict[str, list[str]] = {}
    latencies: dict[str, float] = {}
    started_all = time.perf_counter()
    for qid, text in dataset.queries.items():
        started = time.perf_counter()
        hits = service.search(collection, text, tenant=EVAL_TENANT, mode=mode, top_k=depth * 2)
        latencies[qid] = (time.perf_counter() - started) * 1000
        ranked: list[str] = []
        for hit in hits:  # best chunk first, so the first occurrence is the document's rank
            if hit.document_source not in ranked:
                ranked.append(hit.document_source)
        run[qid] = ranked[:depth]
    query_seconds = time.perf_counter() - started_all
    metrics = evaluate_run(run, dataset.qrels)
    metrics.update(_latency_summary(list(latencies.values())))
    metrics["queries"] = float(len(run))
    metrics["index_seconds"] = index.seconds
    metrics["indexed_now"] = float(index.added)
    per_query = score_queries(run, dataset.qrels)
    for qid, scores in per_query.items():
        scores["latency_ms"] = round(latencies.get(qid, 0.0), 3)
    return Evaluation(metrics, per_query, index.seconds, round(query_seconds, 3))


def evaluate_squad(
    service: RagService,
    dataset: SquadDataset,
    *,
    limit: int | None = None,
    mode: RetrievalMode | None = None,
    judge: AnswerJudge | None = None,
    on_progress: Progress | None = None,
) -> Evaluation:
    """Answer every question with retrieval over all paragraphs; SQuAD v2 EM/F1, abstention
    on unanswerable questions, how often the gold paragraph was retrieved, citation
    correctness, and (with a ``judge``) faithfulness, relevance and completeness of every
    answer that did not abstain."""
    collection = f"squad-{dataset.fingerprint()}-{service.pipeline_hash[:8]}"
    documents = [
        TextDocument(source=p.id, text=p.context, title=p.title) for p in dataset.paragraphs
    ]
    index = index_corpus(service, collection, documents)
    questions = dataset.questions if limit is None else dataset.questions[:limit]
    per_query: dict[str, dict[str, float]] = {}
    details: dict[str, dict[str, Any]] = {}
    retrieved: list[bool] = []
    started_all = time.perf_counter()
    for i, question in enumerate(questions, start=1):
        started = time.perf_counter()
        answer = service.query(collection, question.question, tenant=EVAL_TENANT, mode=mode)
        latency = (time.perf_counter() - started) * 1000
        scores, detail = _score_answer(question, answer, judge)
        per_query[question.id] = {**scores, "latency_ms": round(latency, 3)}
        details[question.id] = detail
        retrieved.append(
            any(s.hit.document_source == question.paragraph_id for s in answer.sources)
        )
        if on_progress is not None:
            on_progress(i, len(questions))
    query_seconds = time.perf_counter() - started_all
    rows = [per_query[q.id] for q in questions]
    metrics = _squad_summary(
        [row["exact_match"] for row in rows],
        [row["f1"] for row in rows],
        [bool(row["answerable"]) for row in rows],
        [bool(row["abstained"]) for row in rows],
        retrieved,
        [row["latency_ms"] for row in rows],
    )
    metrics.update(_answer_summary(rows))
    return Evaluation(metrics, per_query, index.seconds, round(query_seconds, 3), details)


def _score_answer(
    question: SquadQuestion, answer: Answer, judge: AnswerJudge | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """One question's scores, and its prediction (with the judge's reasons) to read later."""
    prediction = "" if answer.abstained else _CITATION.sub("", answer.text).strip()
    golds = list(question.answers)
    scores = {
        "exact_match": exact_match(prediction, golds),
        "f1": token_f1(prediction, golds),
        "abstained": float(answer.abstained),
        "answerable": float(not question.is_impossible),
    }
    if not question.is_impossible:
        cited = [] if answer.abstained else [s.hit.chunk.text for s in answer.cited]
        scores["citation_correct"] = citation_correct(cited, golds)
    detail: dict[str, Any] = {"question": question.question, "prediction": prediction}
    if judge is not None and not answer.abstained:
        sources = [s.hit.chunk.text for s in answer.sources]
        judgement = judge.judge(question.question, answer.text, sources, golds)
        scores.update(judgement.scores())
        detail["judge"] = judgement.as_dict()
    return scores, detail


def _answer_summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Means of the per-question scores that only some questions have (citations, judge)."""
    summary: dict[str, float] = {}
    cited = [row["citation_correct"] for row in rows if "citation_correct" in row]
    summary["citation_correct"] = _mean(np.array(cited))
    judged = [row for row in rows if "judge_failed" in row]
    if judged:
        summary["judged"] = float(len(judged))
        summary["judge_failures"] = float(sum(row["judge_failed"] for row in judged))
        for key in ("judge_faithfulness", "judge_relevance", "judge_completeness"):
            summary[key] = _mean(np.array([row[key] for row in judged if key in row]))
    return summary


def _squad_summary(
    em: list[float],
    f1: list[float],
    answerable: list[bool],
    abstained: list[bool],
    retrieved: list[bool],
    latencies: list[float],
) -> dict[str, float]:
    has = np.array(answerable, dtype=bool)
    absent = np.array(abstained, dtype=bool)
    em_a, f1_a = np.array(em), np.array(f1)
    summary = {
        "questions": float(len(em)),
        "exact_match": _mean(em_a),
        "f1": _mean(f1_a),
        "has_answer_exact_match": _mean(em_a[has]),
        "has_answer_f1": _mean(f1_a[has]),
        "no_answer_abstention": _mean(absent[~has].astype(float)),
        "has_answer_abstention": _mean(absent[has].astype(float)),
        "gold_paragraph_retrieved": _mean(np.array(retrieved, dtype=float)[has]),
    }
    summary.update(_latency_summary(latencies))
    return summary


def _mean(values: np.ndarray) -> float:
    return round(float(values.mean()), 4) if values.size else 0.0


def _latency_summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    p50, p95, p99 = np.percentile(np.array(latencies), [50, 95, 99])
    return {
        "latency_p50_ms": round(p50, 2),
        "latency_p95_ms": round(p95, 2),
        "latency_p99_ms": round(p99, 2),
    }
