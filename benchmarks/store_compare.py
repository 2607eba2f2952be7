"""The embedded store (SQLite) against the server store (PostgreSQL + pgvector) on BEIR SciFact:
retrieval quality per mode (nDCG@10; the stores must agree within 0.01), ``service.search``
latency p50/p99 side by side, and ingest time.

Every store is filled from an empty database through the real service pipeline (load, chunk,
embed, ``put_document``), as ``ragserve eval beir`` does. Embedding costs the same for every
store and dominates (about 5 min on 2 cores), so it runs once: a caching wrapper around the
configured embedder keeps the passage vectors in ``benchmarks/.cache/store_compare`` and the
timed ingests only chunk and store. Query embedding is not cached: latency is end to end.

Stores: ``sqlite`` (in-memory BM25, numpy dense), ``postgresql`` (in-memory BM25, pgvector:
SciFact's ~10k chunks exceed ``exact_max``, so dense search goes through HNSW) and
``postgresql-tsvector`` (BM25 in SQL; same database). PostgreSQL is a throwaway server started
as the tests start it (``tests/pg.py``) unless ``--postgres-url`` names a server (a fresh
database is created on it and dropped at the end).

Per store and mode: 20 warm-up searches with SciFact queries outside the test split, then the
300 test queries once each. The 1-minute load average is printed around each phase: compare
figures only from a quiet machine.

    python benchmarks/store_compare.py [--data DIR] [--postgres-url URL] [--modes bm25,dense,hybrid]
        [--docs N]   # a quick run: the judged documents plus N others, not the whole corpus
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench_data import REPO_ROOT, scifact_dir

sys.path.insert(0, str(REPO_ROOT / "tests"))
from pg import DatabaseFactory, EmbeddedPostgres  # the server the tests start

CACHE_DIR = REPO_ROOT / "benchmarks" / ".cache"
MODES = ("bm25", "dense", "hybrid")
AGREEMENT = 0.01
WARMUP = 20


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class CachedEmbedder:
    """The configured embedder, with passage vectors cached on disk by sha256 of the text."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self._inner = inner
        self._path = folder / f"vectors-{hashlib.sha256(inner.model_id.encode()).hexdigest()[:12]}"
        self._rows: dict[str, np.ndarray] = {}
        if self._path.with_suffix(".npz").is_file():
            saved = np.load(self._path.with_suffix(".npz"))
            self._rows = dict(zip(saved["keys"].tolist(), saved["rows"], strict=True))
        self.misses = 0

    @property
    def model_id(self) -> str:
        return str(self._inner.model_id)

    @property
    def dimension(self) -> int:
        return int(self._inner.dimension)

    @property
    def tokenizer(self) -> Any:
        return self._inner.tokenizer

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self._rows]
        if missing:
            self.misses += len(missing)
            fresh = self._inner.embed_documents([texts[i] for i in missing])
            for i, row in zip(missing, fresh, strict=True):
                self._rows[keys[i]] = row
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._rows[k] for k in keys]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._inner.embed_query(text), dtype=np.float32)

    def save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._rows))
        rows = np.stack(list(self._rows.values())) if self._rows else np.zeros((0, 0))
        np.savez(self._path, keys=keys, rows=rows)


def open_service(store_url: str, data_dir: Path, embedder: CachedEmbedder) -> Any:
    """A service on ``store_url`` wired like ``build_service``, with the caching embedder."""
    from ragserve.config import Settings
    from ragserve.generate import generators
    from ragserve.rerank import rerankers
    from ragserve.service import RagService
    from ragserve.store import open_store

    base = Settings(data_dir=data_dir)
    settings = base.model_copy(update={"store": base.store.model_copy(update={"url": store_url})})
    store = open_store(settings.store)
    reranker = rerankers.create(settings.rerank.name, settings.rerank)
    generator = generators.create(settings.llm.provider, settings.llm)
    return RagService(settings, store, embedder, reranker, generator)


def base_embedder() -> Any:
    from ragserve.config import Settings
    from ragserve.embed import embedders

    settings = Settings().embed.model_copy(update={"cache_dir": CACHE_DIR / "models"})
    return embedders.create(settings.provider, settings)


def documents(dataset: Any) -> list[Any]:
    from ragserve.types import TextDocument

    return [
        TextDocument(source=doc_id, text=doc.content, title=doc.title or None)
        for doc_id, doc in dataset.corpus.items()
    ]


def collection_name(service: Any, dataset: Any) -> str:
    """The collection ``evaluate_beir`` indexes into (so that it finds every document there)."""
    return f"beir-{dataset.fingerprint()}-{service.pipeline_hash[:8]}"


def warmup_queries(data: Path, test_ids: set[str]) -> list[str]:
    found = []
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line) if line.strip() else {}
            if record and str(record["_id"]) not in test_ids and record.get("text"):
                found.append(str(record["text"]))
            if len(found) == WARMUP:
                break
    return found


def measure(service: Any, dataset: Any, modes: Sequence[str], warmup: list[str]) -> dict[str, Any]:
    """Ingest time (from an empty store), then per mode nDCG@10 and latency."""
    from ragserve.eval.runner import EVAL_TENANT, evaluate_beir, index_corpus

    collection = collection_name(service, dataset)
    before = load1()
    report = index_corpus(service, collection, documents(dataset))
    result: dict[str, Any] = {
        "ingest_s": report.seconds,
        "chunks": service.store.get_collection(EVAL_TENANT, collection).chunk_count,
        "load": [before, load1()],
    }
    for mode in modes:
        for text in warmup:
            service.search(collection, text, tenant=EVAL_TENANT, mode=mode, top_k=200)
        before = load1()
        metrics = evaluate_beir(service, dataset, mode=mode).metrics
        if metrics["indexed_now"]:
            log(f"warning: evaluate_beir indexed {metrics['indexed_now']:.0f} documents again")
        result[mode] = {
            "ndcg@10": metrics["ndcg@10"],
            "p50_ms": metrics["latency_p50_ms"],
            "p99_ms": metrics["latency_p99_ms"],
            "load": [before, load1()],
        }
        log(f"  {mode}: nDCG@10 {metrics['ndcg@10']:.4f}, p50 {metrics['latency_p50_ms']} ms")
    return result


@contextmanager
def postgres_database(given: str | None) -> Iterator[str]:
    """A fresh database: on ``given``'s server, else on a throwaway embedded server."""
    server = None if given else EmbeddedPostgres()
    admin = server.start() if server is not None else str(given)
    factory = DatabaseFactory(admin)
    url = factory.create()
    try:
        yield url
    finally:
        factory.drop(url)
        factory.close()
        if server is not None:
            server.stop()


def fill_cache(embedder: CachedEmbedder, dataset: Any, tmp: Path) -> None:
    """Embed every passage once (untimed) by ingesting into a scratch SQLite store."""
    service = open_service(f"sqlite:///{tmp / 'scratch.db'}", tmp / "scratch", embedder)
    try:
        started = time.perf_counter()
        service.ingest_texts("scratch", documents(dataset))
        if embedder.misses:
            embedder.save()
            log(f"embedded {embedder.misses} chunks in {time.perf_counter() - started:.0f} s")
    finally:
        service.close()


def subset(dataset: Any, others: int) -> Any:
    """The dataset with only the judged documents plus the first ``others`` unjudged ones."""
    from ragserve.eval.beir import BeirDataset

    judged = {doc for relevant in dataset.qrels.values() for doc in relevant}
    extra = [doc for doc in dataset.corpus if doc not in judged][:others]
    keep = judged | set(extra)
    corpus = {k: v for k, v in dataset.corpus.items() if k in keep}
    return BeirDataset(corpus=corpus, queries=dataset.queries, qrels=dataset.qrels)


def print_table(results: dict[str, dict[str, Any]], modes: Sequence[str]) -> None:
    print(f"\n{'store':22s} {'ingest s':>9s} {'chunks':>7s}", end="")
    for mode in modes:
        print(f" | {mode + ' nDCG@10':>14s} {'p50 ms':>7s} {'p99 ms':>7s}", end="")
    print()
    for name, result in results.items():
        print(f"{name:22s} {result['ingest_s']:9.1f} {result['chunks']:7d}", end="")
        for mode in modes:
            m = result[mode]
            print(f" | {m['ndcg@10']:14.4f} {m['p50_ms']:7.1f} {m['p99_ms']:7.1f}", end="")
        print()
    reference = results["sqlite"]
    for name, result in results.items():
        if name == "sqlite":
            continue
        for mode in modes:
            gap = abs(result[mode]["ndcg@10"] - reference[mode]["ndcg@10"])
            verdict = "agrees" if gap <= AGREEMENT else "DIFFERS"
            print(f"{name} {mode}: nDCG@10 differs from sqlite by {gap:.4f} ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="BEIR SciFact folder")
    parser.add_argument("--postgres-url", default=None, help="a server with pgvector ≥ 0.8")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--docs", type=int, default=None, help="judged documents + N others")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    from ragserve.eval.beir import load_beir

    dataset = load_beir(scifact_dir(args.data), "test")
    if args.docs is not None:
        dataset = subset(dataset, args.docs)
    log(f"SciFact: {len(dataset.corpus)} documents, {len(dataset.queries)} test queries")
    warmup = warmup_queries(scifact_dir(args.data), set(dataset.queries))
    embedder = CachedEmbedder(base_embedder(), CACHE_DIR / "store_compare")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="store-compare-") as folder:
        tmp = Path(folder)
        fill_cache(embedder, dataset, tmp)
        with postgres_database(args.postgres_url) as pg_url:
            stores = {
                "sqlite": f"sqlite:///{tmp / 'sqlite.db'}",
                "postgresql": pg_url,
                "postgresql-tsvector": f"{pg_url}?keyword_engine=tsvector",
            }
            for name, url in stores.items():
                log(f"{name} (load {load1()})")
                service = open_service(url, tmp / name, embedder)
                try:
                    results[name] = measure(service, dataset, modes, warmup)
                finally:
                    service.close()
    results["postgresql-tsvector"]["ingest_s"] = float("nan")  # same database: not re-ingested
    print_table(results, modes)
    print(json.dumps({"benchmark": "store_compare", "results": results}))


if __name__ == "__main__":
    main()
