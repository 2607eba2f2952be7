"""Evaluation runs through the real service: per-query scores that average to the aggregate
figures, timing, and a record stored in (and read back from) the experiment store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragserve.config import Settings
from ragserve.eval.judge import Judgement, Rating, Ratings
from ragserve.eval.runs import DatasetSpec, load_dataset, run_eval, save_details
from ragserve.pipeline import PipelineConfig
from ragserve.store import open_store


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def small_beir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 SciFact test queries over their relevant abstracts and 40 others."""
    source, folder = shared_data / "scifact", tmp_path_factory.mktemp("beir-small")
    rows = [line.split("\t") for line in read_lines(source / "qrels/test.tsv")][1:]
    queries = list(dict.fromkeys(row[0] for row in rows))[:8]
    judged = [row for row in rows if row[0] in queries]
    corpus = [json.loads(line) for line in read_lines(source / "corpus.jsonl")]
    relevant = {row[1] for row in judged}
    docs = [d for d in corpus if d["_id"] in relevant] + [
        d for d in corpus if d["_id"] not in relevant
    ][:40]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    texts = [json.loads(line) for line in read_lines(source / "queries.jsonl")]
    picked = [q for q in texts if q["_id"] in queries]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in picked))
    (folder / "qrels").mkdir()
    table = ["query-id\tcorpus-id\tscore", *("\t".join(row) for row in judged)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(table) + "\n")
    return folder


@pytest.fixture(scope="module")
def normans(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQuAD v2 slice's first article (39 paragraphs about the Normans)."""
    document = json.loads((shared_data / "qa" / "squad-v2.0-dev-cs224n-half.json").read_text())
    path = tmp_path_factory.mktemp("squad-small") / "normans.json"
    path.write_text(json.dumps({"version": "v2.0", "data": document["data"][:1]}))
    return path


class FakeJudge:
    """Rates every answer 4/5/3, except that it fails on the question about the Norse leader."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def judge(
        self, question: str, answer: str, sources: Sequence[str], golds: Sequence[str] = ()
    ) -> Judgement:
        self.calls.append(question)
        if "Norse leader" in question:
            return Judgement(None, 4, "invalid JSON")
        rate = [Rating(score=s, reason="ok") for s in (4, 5, 3)]
        return Judgement(Ratings(faithfulness=rate[0], relevance=rate[1], completeness=rate[2]), 1)


def test_a_beir_run_is_stored_with_per_query_scores(settings: Settings, small_beir: Path) -> None:
    """Per-query nDCG@10 / Recall@100 / MRR@10 average to the aggregates; the record holds
    the configuration hash, the dataset fingerprint and timing, and reads back by prefix."""
    dataset = load_dataset(DatasetSpec("beir", small_beir))
    config = PipelineConfig.resolve(
        {"retrieve": {"mode": "bm25"}}, PipelineConfig.from_settings(settings)
    )
    record, evaluation = run_eval(settings, dataset, config, label="bm25")
    assert set(record.per_query) == set(dataset.data.queries)
    for key in ("ndcg@10", "recall@100", "mrr@10"):
        mean = sum(row[key] for row in record.per_query.values()) / len(record.per_query)
        assert mean == pytest.approx(record.metrics[key])
    assert all(row["latency_ms"] > 0 for row in record.per_query.values())
    assert record.config_hash == config.config_hash()
    assert record.config["retrieve"]["mode"] == "bm25"
    assert (record.kind, record.dataset, record.label) == (
        "beir",
        f"{small_beir.name}/test",
        "bm25",
    )
    assert set(record.timing) == {
        "queries", "index_seconds", "query_seconds", "latency_p50_ms", "latency_p95_ms",
        "wall_seconds",
    }  # fmt: skip
    assert record.timing["wall_seconds"] >= record.timing["index_seconds"]
    assert len(record.id) == 32
    store = open_store(settings.store.model_copy(update={"url": settings.store_url}))
    try:
        stored = store.experiments.get_eval_run(settings.tenant, record.id[:8])
    finally:
        store.close()
    assert stored.per_query == record.per_query
    assert stored.created_at
    assert save_details(evaluation, settings.data_dir / "none.jsonl") is None


def test_the_dataset_fingerprint_covers_the_judged_queries(small_beir: Path, normans: Path) -> None:
    """Stable across loads; another split of the same corpus differs; a SQuAD limit does not."""
    first = load_dataset(DatasetSpec("beir", small_beir)).fingerprint
    assert first == load_dataset(DatasetSpec("beir", small_beir)).fingerprint
    (small_beir / "qrels" / "two.tsv").write_text(
        "\n".join(read_lines(small_beir / "qrels" / "test.tsv")[:3]) + "\n"
    )
    assert first != load_dataset(DatasetSpec("beir", small_beir, split="two")).fingerprint
    squad = load_dataset(DatasetSpec("squad", normans)).fingerprint
    assert squad == load_dataset(DatasetSpec("squad", normans, limit=5)).fingerprint


def test_a_squad_run_scores_answers_citations_and_the_judge(
    settings: Settings, normans: Path
) -> None:
    """EM/F1, abstention, citation correctness on answerable questions only, the judge's
    ratings on answers that did not abstain, and a judge failure recorded, not raised."""
    dataset = load_dataset(DatasetSpec("squad", normans, limit=12))
    judge = FakeJudge()
    config = PipelineConfig.from_settings(settings)
    record, evaluation = run_eval(settings, dataset, config, judge=judge)
    questions = {q.id: q for q in dataset.data.questions[:12]}
    assert set(record.per_query) == set(questions)
    for qid, row in record.per_query.items():
        assert row["answerable"] == float(not questions[qid].is_impossible)
        assert ("citation_correct" in row) == (not questions[qid].is_impossible)
        assert ("judge_failed" in row) == (not row["abstained"])
    em = [row["exact_match"] for row in record.per_query.values()]
    assert record.metrics["exact_match"] == pytest.approx(sum(em) / len(em), abs=1e-4)
    assert record.metrics["questions"] == 12
    assert record.metrics["judged"] == len(judge.calls)
    leader = next(qid for qid, q in questions.items() if "Norse leader" in q.question)
    assert record.per_query[leader]["judge_failed"] == 1.0  # answered, so judged
    assert evaluation.details[leader]["judge"]["error"] == "invalid JSON"
    assert record.metrics["judge_failures"] == 1
    assert 0.0 <= record.metrics["citation_correct"] <= 1.0
    details = save_details(evaluation, settings.data_dir / "answers.jsonl")
    assert details is not None
    lines = [json.loads(line) for line in read_lines(details)]
    assert [line["id"] for line in lines] == list(questions)
    assert {"question", "prediction", "scores"} <= set(lines[0])
