"""Search latency of the embedded SQLite store at scale (default 100,000 chunks × 384 dims).

Builds a store through ``put_document`` from synthetic chunks: text sampled from the SciFact
vocabulary with its word frequencies, random unit vectors. Then times dense and BM25 search
(SciFact test queries; BM25 by both keyword engines), with and without filters, and the
matrix and BM25 index (re)loads.

    python benchmarks/store_search.py [--chunks 100000] [--dim 384] [--db path.db]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ragserve.retrieve.filters import parse_filter
from ragserve.store.sqlite import SqliteStore
from ragserve.types import Chunk, DocumentRecord

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
TENANT, COLLECTION = "bench", "scifact-synthetic"


def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    counts: Counter[str] = Counter()
    with (DATA / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            counts.update(re.findall(r"\w+", f"{row['title']} {row['text']}"))
    words = np.array(list(counts), dtype=object)
    freq = np.array(list(counts.values()), dtype=np.float64)
    return words, np.cumsum(freq / freq.sum())


def queries(limit: int) -> list[str]:
    with (DATA / "queries.jsonl").open() as lines:
        return [json.loads(line)["text"] for line in lines][:limit]


def build(store: SqliteStore, chunks: int, dim: int, per_doc: int, seed: int) -> float:
    """Ingest ``chunks`` chunks in documents of ``per_doc``; returns seconds taken."""
    words, cumulative = vocabulary()
    rng = np.random.default_rng(seed)
    store.ensure_collection(TENANT, COLLECTION)
    started = time.perf_counter()
    for d in range(chunks // per_doc):
        doc_id = f"doc{d:06d}"
        record = DocumentRecord(
            doc_id, f"src/{doc_id}.txt", f"Document {d}", "text/plain", f"hash{d}", "pipe",
            {"year": 2000 + d % 25, "lang": "en" if d % 4 else "de"},
        )  # fmt: skip
        # Word frequencies as in SciFact: inverse-CDF sampling of 120 words per chunk.
        picks = np.searchsorted(cumulative, rng.random((per_doc, 120)), side="right")
        picks = np.minimum(picks, len(words) - 1)
        texts = [" ".join(words[row]) for row in picks]
        chunk_list = [
            Chunk(f"{doc_id}-{i}", doc_id, i, t, 1 + i // 10, 0, len(t), 160, {})
            for i, t in enumerate(texts)
        ]
        vectors = rng.standard_normal((per_doc, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.put_document(TENANT, COLLECTION, record, chunk_list, vectors)
    return time.perf_counter() - started


def timed(fn: Callable[[int], object], runs: int) -> tuple[float, float]:
    times = []
    for i in range(runs):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--per-doc", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--db", type=Path, help="reuse/keep this file (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        store = SqliteStore(path)
        try:
            if store.list_collections(TENANT):
                print(f"reusing {path}")
            else:
                seconds = build(store, args.chunks, args.dim, args.per_doc, seed=0)
                print(f"ingest: {args.chunks:,} chunks in {seconds:.1f} s "
                      f"({args.chunks / seconds:,.0f} chunks/s)")  # fmt: skip
            report(store, path, args)
        finally:
            store.close()


def report(store: SqliteStore, path: Path, args: argparse.Namespace) -> None:
    info = store.get_collection(TENANT, COLLECTION)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = queries(args.queries)
    sources = [f"src/doc{d:06d}.txt" for d in range(0, info.document_count, 97)][:10]
    fts5 = SqliteStore(path, keyword_engine="fts5")
    cases: dict[str, Callable[[int], object]] = {
        "dense": lambda i: store.dense_search(TENANT, COLLECTION, vectors[i], limit=args.limit),
        "dense, filter year>=2020 (20%)": lambda i: store.dense_search(
            TENANT, COLLECTION, vectors[i], limit=args.limit,
            filters=parse_filter({"year": {"$gte": 2020}}),
        ),
        "dense, filter 10 sources (1%)": lambda i: store.dense_search(
            TENANT, COLLECTION, vectors[i], limit=args.limit,
            filters=parse_filter({"source": {"$in": sources}}),
        ),
        "dense, filter page<=2 (chunk-level, 20%)": lambda i: store.dense_search(
            TENANT, COLLECTION, vectors[i], limit=args.limit,
            filters=parse_filter({"page": {"$lte": 2}}),
        ),
        "bm25": lambda i: store.keyword_search(
            TENANT, COLLECTION, texts[i % len(texts)], limit=args.limit
        ),
        "bm25, filter year>=2020": lambda i: store.keyword_search(
            TENANT, COLLECTION, texts[i % len(texts)], limit=args.limit,
            filters=parse_filter({"year": {"$gte": 2020}}),
        ),
        "bm25 (fts5 engine)": lambda i: fts5.keyword_search(
            TENANT, COLLECTION, texts[i % len(texts)], limit=args.limit
        ),
        "bm25 (fts5 engine), filter year>=2020": lambda i: fts5.keyword_search(
            TENANT, COLLECTION, texts[i % len(texts)], limit=args.limit,
            filters=parse_filter({"year": {"$gte": 2020}}),
        ),
    }  # fmt: skip
    print(f"collection: {info.chunk_count:,} chunks, {info.document_count:,} documents, "
          f"dim {args.dim}; top {args.limit}; {args.queries} queries each")  # fmt: skip
    fresh = SqliteStore(path)
    try:
        started = time.perf_counter()
        fresh.dense_search(TENANT, COLLECTION, vectors[0], limit=args.limit)
        print(f"matrix load (first dense search of a new instance): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
        started = time.perf_counter()
        fresh.keyword_search(TENANT, COLLECTION, texts[0], limit=args.limit)
        print(f"BM25 index build (first keyword search of a new instance): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
    finally:
        fresh.close()
    store.dense_search(TENANT, COLLECTION, vectors[0], limit=args.limit)  # warm the matrix
    print(f"{'search':42s} {'p50 ms':>8s} {'p95 ms':>8s}")
    try:
        for name, fn in cases.items():
            fn(0)
            p50, p95 = timed(fn, args.queries)
            print(f"{name:42s} {p50:8.2f} {p95:8.2f}")
    finally:
        fts5.close()
    raw = rng.standard_normal((info.chunk_count, args.dim)).astype(np.float32)
    p50, p95 = timed(lambda i: np.argpartition(raw @ vectors[i], -args.limit), args.queries)
    print(f"{'(numpy gemv + argpartition alone)':42s} {p50:8.2f} {p95:8.2f}")


if __name__ == "__main__":
    main()
