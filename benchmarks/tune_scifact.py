"""Choose ragserve's retrieval defaults by evaluation on SciFact *train* queries.

For each chunking configuration the corpus is indexed once (cached under ``--data-dir``), then
every retrieval setting is scored on the train split: bm25, dense, and hybrid with reciprocal
rank fusion and with convex fusion over a grid of dense weights. The defaults in
``ragserve.config`` come from this table; the test split is only used to report them.

    python benchmarks/tune_scifact.py --chunks 128:16,200:32,256:32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ragserve.config import ChunkSettings, RetrieveSettings, Settings
from ragserve.eval.beir import load_beir
from ragserve.eval.runner import evaluate_beir
from ragserve.service import build_service

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--chunks", default="128:16,200:32,256:32", help="size:overlap,...")
    parser.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / ".cache" / "tune")
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        raise SystemExit(f"{SCIFACT} is missing: clone the repo beside shared/")
    dataset = load_beir(SCIFACT, args.split)
    weights = [float(w) for w in args.weights.split(",")]
    rows: list[dict[str, object]] = []
    for spec in args.chunks.split(","):
        size, overlap = (int(x) for x in spec.split(":"))
        base = Settings(data_dir=args.data_dir, chunk=ChunkSettings(size=size, overlap=overlap))
        service = build_service(base)
        try:
            started = time.perf_counter()
            evaluate_beir(service, dataset, mode="bm25")  # builds (or reuses) the index
            print(f"chunks {size}/{overlap}: index ready in {time.perf_counter() - started:.0f} s")
            for label, retrieve, mode in _settings_grid(weights):
                service.settings = base.model_copy(update={"retrieve": retrieve})
                metrics = evaluate_beir(service, dataset, mode=mode).metrics
                row = {
                    "chunk": f"{size}/{overlap}",
                    "retrieval": label,
                    "ndcg@10": round(metrics["ndcg@10"], 4),
                    "recall@100": round(metrics["recall@100"], 4),
                    "p50_ms": metrics["latency_p50_ms"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            service.close()
    best = max((r for r in rows if r["retrieval"] != "bm25"), key=lambda r: r["ndcg@10"])  # type: ignore[arg-type, return-value]
    print("best on", args.split, json.dumps(best))


def _settings_grid(
    weights: list[float],
) -> list[tuple[str, RetrieveSettings, str]]:
    grid: list[tuple[str, RetrieveSettings, str]] = [
        ("bm25", RetrieveSettings(candidates=300), "bm25"),
        ("dense", RetrieveSettings(candidates=300), "dense"),
        ("hybrid rrf k=60", RetrieveSettings(candidates=300, fusion="rrf"), "hybrid"),
    ]
    grid += [
        (f"hybrid convex w={w}", RetrieveSettings(candidates=300, dense_weight=w), "hybrid")
        for w in weights
    ]
    return grid


if __name__ == "__main__":
    main()
