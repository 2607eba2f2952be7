"""Evaluation runs: evaluate one pipeline configuration on a dataset and store the result.

A run records what ran (the resolved configuration and its hash, the dataset and its
fingerprint), the aggregate metrics, every query's scores (for paired comparisons later) and
timing, as an :class:`~ragserve.store.experiments.EvalRunRecord` in the service's store.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ragserve.eval.beir import BeirDataset, load_beir
from ragserve.eval.runner import Evaluation, Progress, evaluate_beir, evaluate_squad
from ragserve.eval.squad import SquadDataset, load_squad
from ragserve.store.experiments import EvalRunRecord

if TYPE_CHECKING:
    from ragserve.config import Settings
    from ragserve.eval.judge import AnswerJudge
    from ragserve.pipeline import PipelineConfig
    from ragserve.service import RagService

__all__ = [
    "DatasetSpec",
    "LoadedDataset",
    "evaluate",
    "load_dataset",
    "make_record",
    "reports_dir",
    "run_eval",
    "save_details",
]


@dataclass(frozen=True)
class DatasetSpec:
    """What to evaluate on: a BEIR folder and its qrels split, or a SQuAD file (its first
    ``limit`` questions)."""

    kind: Literal["beir", "squad"]
    path: Path
    split: str = "test"
    limit: int | None = None


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset read from disk, named and fingerprinted.

    The fingerprint covers what the queries are judged against (BEIR: corpus and the split's
    queries and qrels; SQuAD: paragraphs and every question), not ``limit``: runs over a
    different number of questions of one file are compared on the questions they share.
    """

    spec: DatasetSpec
    name: str
    fingerprint: str
    data: BeirDataset | SquadDataset


def load_dataset(spec: DatasetSpec) -> LoadedDataset:
    """Read and fingerprint the dataset; ``InputError`` when it is missing or malformed."""
    if spec.kind == "beir":
        beir = load_beir(spec.path, spec.split)
        judged = {qid: [beir.queries[qid], sorted(beir.qrels[qid].items())] for qid in beir.qrels}
        fingerprint = _digest([beir.fingerprint(), judged])
        return LoadedDataset(spec, f"{spec.path.name}/{spec.split}", fingerprint, beir)
    squad = load_squad(spec.path)
    questions = [[q.id, q.question, list(q.answers), q.paragraph_id] for q in squad.questions]
    fingerprint = _digest([squad.fingerprint(), questions])
    return LoadedDataset(spec, spec.path.stem, fingerprint, squad)


def evaluate(
    service: RagService,
    dataset: LoadedDataset,
    config: PipelineConfig,
    *,
    judge: AnswerJudge | None = None,
    on_progress: Progress | None = None,
) -> Evaluation:
    """Evaluate ``service`` (built for ``config``) on ``dataset``."""
    if isinstance(dataset.data, BeirDataset):
        return evaluate_beir(
            service, dataset.data, mode=config.retrieve.mode, on_progress=on_progress
        )
    return evaluate_squad(
        service,
        dataset.data,
        limit=dataset.spec.limit,
        mode=config.retrieve.mode,
        judge=judge,
        on_progress=on_progress,
    )


def make_record(
    evaluation: Evaluation,
    *,
    tenant: str,
    dataset: LoadedDataset,
    config: PipelineConfig,
    wall_seconds: float,
    label: str = "",
    config_name: str | None = None,
    experiment_id: str | None = None,
    variant: str | None = None,
) -> EvalRunRecord:
    """The record of one evaluation, under a fresh id (uuid4 hex)."""
    latencies = np.array(evaluation.latencies_ms or [0.0])
    p50, p95 = np.percentile(latencies, [50, 95])
    timing = {
        "queries": float(len(evaluation.per_query)),
        "index_seconds": evaluation.index_seconds,
        "query_seconds": evaluation.query_seconds,
        "latency_p50_ms": round(float(p50), 3),
        "latency_p95_ms": round(float(p95), 3),
        "wall_seconds": round(wall_seconds, 3),
    }
    return EvalRunRecord(
        id=uuid.uuid4().hex,
        tenant=tenant,
        kind=dataset.spec.kind,
        dataset=dataset.name,
        dataset_fingerprint=dataset.fingerprint,
        config_hash=config.config_hash(),
        config=config.model_dump(mode="json"),
        metrics=dict(evaluation.metrics),
        per_query=evaluation.per_query,
        timing=timing,
        label=label,
        config_name=config_name,
        experiment_id=experiment_id,
        variant=variant,
    )


def run_eval(
    settings: Settings,
    dataset: LoadedDataset,
    config: PipelineConfig,
    *,
    label: str = "",
    config_name: str | None = None,
    experiment_id: str | None = None,
    variant: str | None = None,
    judge: AnswerJudge | None = None,
    on_progress: Progress | None = None,
) -> tuple[EvalRunRecord, Evaluation]:
    """Build the service for ``config`` (query cache off: a run measures the pipeline),
    evaluate, and store the run; returns the stored record and the evaluation."""
    from ragserve.service import build_service

    started = time.perf_counter()
    applied = config.settings(settings)
    applied = applied.model_copy(
        update={"cache": applied.cache.model_copy(update={"enabled": False})}
    )
    service = build_service(applied)
    try:
        evaluation = evaluate(service, dataset, config, judge=judge, on_progress=on_progress)
        record = make_record(
            evaluation,
            tenant=settings.tenant,
            dataset=dataset,
            config=config,
            wall_seconds=time.perf_counter() - started,
            label=label,
            config_name=config_name,
            experiment_id=experiment_id,
            variant=variant,
        )
        stored = service.store.experiments.put_eval_run(record)
    finally:
        service.close()
    return stored, evaluation


def reports_dir(settings: Settings) -> Path:
    """``eval.reports_dir``, or ``<data_dir>/reports``."""
    return settings.eval.reports_dir or settings.data_dir / "reports"


def save_details(evaluation: Evaluation, path: Path) -> Path | None:
    """Write each question's prediction (and the judge's reasons) as JSON lines; ``None``
    when the evaluation has no such details (retrieval runs)."""
    if not evaluation.details:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for qid, detail in evaluation.details.items():
            scores = evaluation.per_query.get(qid, {})
            out.write(json.dumps({"id": qid, **detail, "scores": scores}) + "\n")
    return path


def _digest(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
