"""Run retrieval and answer evaluations through the real service.

Corpora are indexed under the ``eval`` tenant into a collection named after the corpus
fingerprint and the pipeline hash, so a second run (another mode, another split, another
fusion weight) reuses the index, and indexes of different chunking or embedders coexist.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ragserve.eval.beir import BeirDataset
from ragserve.eval.metrics import evaluate_run, exact_match, token_f1
from ragserve.eval.squad import SquadDataset
from ragserve.types import IngestOutcome, RetrievalMode, TextDocument

if TYPE_CHECKING:  # the runner drives the service; it is wired by entry points only
    from ragserve.service import RagService

EVAL_TENANT = "eval"
_CITATION = re.compile(r"\s*\[\d+\]")
Progress = Callable[[int, int], None]


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
) -> dict[str, float]:
    """nDCG/recall/MRR/P/R/F1 at standard cut-offs over the split's queries; documents are
    ranked by their best chunk."""
    collection = f"beir-{dataset.fingerprint()}-{service.pipeline_hash[:8]}"
    documents = [
        TextDocument(source=doc_id, text=doc.content, title=doc.title or None)
        for doc_id, doc in dataset.corpus.items()
    ]
    index = index_corpus(service, collection, documents, on_progress)
    run: dict[str, list[str]] = {}
    latencies: list[float] = []
    for qid, text in dataset.queries.items():
        started = time.perf_counter()
        hits = service.search(collection, text, tenant=EVAL_TENANT, mode=mode, top_k=depth * 2)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked: list[str] = []
        for hit in hits:  # best chunk first, so the first occurrence is the document's rank
            if hit.document_source not in ranked:
                ranked.append(hit.document_source)
        run[qid] = ranked[:depth]
    metrics = evaluate_run(run, dataset.qrels)
    metrics.update(_latency_summary(latencies))
    metrics["queries"] = float(len(run))
    metrics["index_seconds"] = index.seconds
    metrics["indexed_now"] = float(index.added)
    return metrics


def evaluate_squad(
    service: RagService,
    dataset: SquadDataset,
    *,
    limit: int | None = None,
    mode: RetrievalMode | None = None,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """Answer every question with retrieval over all paragraphs; SQuAD v2 EM/F1, abstention
    on unanswerable questions, and how often the gold paragraph was retrieved."""
    collection = f"squad-{dataset.fingerprint()}-{service.pipeline_hash[:8]}"
    documents = [
        TextDocument(source=p.id, text=p.context, title=p.title) for p in dataset.paragraphs
    ]
    index_corpus(service, collection, documents)
    questions = dataset.questions if limit is None else dataset.questions[:limit]
    em: list[float] = []
    f1: list[float] = []
    answerable: list[bool] = []
    abstained: list[bool] = []
    retrieved: list[bool] = []
    latencies: list[float] = []
    for i, question in enumerate(questions, start=1):
        started = time.perf_counter()
        answer = service.query(collection, question.question, tenant=EVAL_TENANT, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        prediction = "" if answer.abstained else _CITATION.sub("", answer.text).strip()
        golds = list(question.answers)
        em.append(exact_match(prediction, golds))
        f1.append(token_f1(prediction, golds))
        answerable.append(not question.is_impossible)
        abstained.append(answer.abstained)
        retrieved.append(
            any(s.hit.document_source == question.paragraph_id for s in answer.sources)
        )
        if on_progress is not None:
            on_progress(i, len(questions))
    return _squad_summary(em, f1, answerable, abstained, retrieved, latencies)


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
