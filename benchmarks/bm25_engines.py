"""Quality and latency of the embedded store's two keyword engines: ``memory`` (Lucene BM25 on an
in-memory index, the default) and ``fts5`` (SQLite FTS5's ``bm25()``).

Quality: BEIR SciFact indexed as one chunk per document (title + " " + text) through
``put_document``, with random unit vectors (keyword search only, no embedder), then the 300 test
queries; nDCG@10 and recall@100 per engine, both engines reading the same file.

Speed: ``keyword_search`` p50/p95 (top 100) on a synthetic collection (``store_search.py``'s
builder, default 100,000 chunks), the two engines timed alternately query by query so load drift
hits both; then the first search of a new instance (index build) and the first search after a
one-document write (patch). Prints the 1-minute load average around each phase.

    python benchmarks/bm25_engines.py [--data DIR] [--chunks 100000] [--db path.db] [--skip-speed]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ragserve.eval.beir import BeirDataset, load_beir
from ragserve.eval.metrics import evaluate_run
from ragserve.store.sqlite import KeywordEngine, SqliteStore
from ragserve.types import Chunk, DocumentRecord
from store_search import COLLECTION, TENANT, build, queries

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
ENGINES: tuple[KeywordEngine, ...] = ("memory", "fts5")


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def index_corpus(store: SqliteStore, dataset: BeirDataset, collection: str) -> None:
    """One chunk per document, its vector random: only keyword search is measured."""
    rng = np.random.default_rng(0)
    store.ensure_collection(TENANT, collection)
    for doc_id, doc in dataset.corpus.items():
        text = doc.content
        record = DocumentRecord(
            doc_id, doc_id, doc.title, "text/plain",
            hashlib.sha256(text.encode()).hexdigest(), "bm25-engines",
        )  # fmt: skip
        chunk = Chunk(f"{doc_id}-0", doc_id, 0, text, 1, 0, len(text), len(text.split()))
        vector = rng.standard_normal((1, 8)).astype(np.float32)
        store.put_document(TENANT, collection, record, [chunk], vector / np.linalg.norm(vector))


def quality(data: Path) -> None:
    dataset = load_beir(data, "test")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scifact.db"
        writer = SqliteStore(path)
        started = time.perf_counter()
        index_corpus(writer, dataset, "scifact")
        writer.close()
        seconds = time.perf_counter() - started
        print(f"SciFact: {len(dataset.corpus):,} documents indexed in {seconds:.1f} s; "
              f"{len(dataset.queries)} test queries")  # fmt: skip
        print(f"{'engine':8s} {'nDCG@10':>8s} {'R@100':>8s} {'p50 ms':>8s}   ({load()})")
        for engine in ENGINES:
            store = SqliteStore(path, keyword_engine=engine)
            try:
                store.keyword_search(TENANT, "scifact", "warm up", limit=1)
                run, times = {}, []
                for qid, text in dataset.queries.items():
                    began = time.perf_counter()
                    hits = store.keyword_search(TENANT, "scifact", text, limit=100)
                    times.append((time.perf_counter() - began) * 1000)
                    run[qid] = [h.chunk.document_id for h in hits]
            finally:
                store.close()
            metrics = evaluate_run(run, dataset.qrels)
            print(f"{engine:8s} {metrics['ndcg@10']:8.4f} {metrics['recall@100']:8.4f} "
                  f"{statistics.median(times):8.2f}")  # fmt: skip


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    return f"{statistics.median(times):8.2f} {times[int(0.95 * (len(times) - 1))]:8.2f}"


def speed(path: Path, args: argparse.Namespace) -> None:
    stores = {engine: SqliteStore(path, keyword_engine=engine) for engine in ENGINES}
    try:
        memory = stores["memory"]
        if not memory.list_collections(TENANT):
            seconds = build(memory, args.chunks, args.dim, 100, seed=0)
            print(f"synthetic collection: {args.chunks:,} chunks built in {seconds:.0f} s")
        info = memory.get_collection(TENANT, COLLECTION)
        timed_first(memory, "memory index build (first search of an instance)")
        texts = queries(args.queries)
        times: dict[str, list[float]] = {engine: [] for engine in ENGINES}
        print(f"{info.chunk_count:,} chunks; {len(texts)} queries per engine, top 100 ({load()})")
        for text in texts:
            for engine, store in stores.items():
                began = time.perf_counter()
                store.keyword_search(TENANT, COLLECTION, text, limit=100)
                times[engine].append((time.perf_counter() - began) * 1000)
        print(f"{'engine':8s} {'p50 ms':>8s} {'p95 ms':>8s}   ({load()})")
        for engine in ENGINES:
            print(f"{engine:8s} {percentiles(times[engine])}")
        patch_cost(memory)
    finally:
        for store in stores.values():
            store.close()


def timed_first(store: SqliteStore, what: str) -> None:
    began, cpu = time.perf_counter(), time.process_time()
    store.keyword_search(TENANT, COLLECTION, "cell", limit=100)
    print(f"{what}: {time.perf_counter() - began:.2f} s wall, "
          f"{time.process_time() - cpu:.2f} s CPU ({load()})")  # fmt: skip


def patch_cost(store: SqliteStore) -> None:
    """The first search after a one-document write (3 chunks), then the write undone."""
    rng = np.random.default_rng(7)
    info = store.get_collection(TENANT, COLLECTION)
    dim = store.chunk_vectors(TENANT, COLLECTION, [f"doc{0:06d}-0"]).shape[1]
    costs = []
    for i in range(5):
        doc_id = f"patch{i}"
        record = DocumentRecord(doc_id, f"src/{doc_id}.txt", None, "text/plain", doc_id, "p")
        texts = [f"zqx{i} cell {j}" for j in range(3)]
        chunks = [Chunk(f"{doc_id}-{j}", doc_id, j, t, 1, 0, 9, 3) for j, t in enumerate(texts)]
        vectors = rng.standard_normal((3, dim)).astype(np.float32)
        store.put_document(TENANT, COLLECTION, record, chunks, vectors)
        began = time.perf_counter()
        found = store.keyword_search(TENANT, COLLECTION, f"zqx{i}", limit=5)
        costs.append((time.perf_counter() - began) * 1000)
        assert [h.chunk.document_id for h in found] == [doc_id] * 3
        store.delete_document(TENANT, COLLECTION, doc_id)
    assert store.get_collection(TENANT, COLLECTION).chunk_count == info.chunk_count
    print(f"first search after a one-document write: median {statistics.median(costs):.1f} ms "
          f"(max {max(costs):.1f}) ({load()})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--db", type=Path, help="reuse/keep the synthetic collection's file")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    quality(args.data)
    if args.skip_speed:
        return
    with tempfile.TemporaryDirectory() as tmp:
        speed(args.db or Path(tmp) / "synthetic.db", args)


if __name__ == "__main__":
    main()
