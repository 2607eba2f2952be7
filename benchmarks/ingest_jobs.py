"""Ingestion throughput through Celery with 1 and 2 worker processes, on the same corpus.

    python benchmarks/ingest_jobs.py [--n 300] [--broker redis://127.0.0.1:6379/9] [--workers 1 2]

For each worker count: a fresh data dir (SQLite store, local blobs), ``--n`` SciFact abstracts
submitted as text jobs (one per document), N separate ``ragserve worker --concurrency 1``
processes started and waited for until ready (model loading is not timed), then the clock
runs from submission until every job has ended. Prints docs/s and chunks/s per run and the
ratio of 2 workers to 1.

Every worker uses one onnxruntime thread (``RAGSERVE_EMBED__THREADS=1``), so N workers use
N cores; on this 2-core machine, shared with other work, 2 workers can at best double. The
1-minute load average is printed before and after each run so contention is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench_data import REPO_ROOT, scifact_dir
from ragserve.config import EmbedSettings, JobsSettings, Settings
from ragserve.jobs.celery_app import CeleryQueue, make_celery
from ragserve.service import build_service
from ragserve.types import TextDocument

RAGSERVE = Path(sys.executable).parent / "ragserve"
MODEL_CACHE = REPO_ROOT / "benchmarks" / ".cache" / "models"


def corpus(n: int, folder: Path | None) -> list[TextDocument]:
    documents = []
    with (scifact_dir(folder) / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            text = f"{row.get('title', '')}\n\n{row['text']}".strip()
            documents.append(TextDocument(f"scifact-{row['_id']}.txt", text))
            if len(documents) == n:
                break
    return documents


def settings_for(data_dir: Path, broker: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    jobs = JobsSettings(
        backend="celery",
        broker_url=broker,
        ingest_queue=f"bench-ingest-{tag}",
        query_queue=f"bench-embed-{tag}",
    )
    return Settings(
        data_dir=data_dir, embed=EmbedSettings(cache_dir=MODEL_CACHE, threads=1), jobs=jobs
    )


def environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(settings.data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(MODEL_CACHE),
        "RAGSERVE_EMBED__THREADS": "1",
        "RAGSERVE_SERVER__LOG_LEVEL": "WARNING",
        **{f"RAGSERVE_JOBS__{k.upper()}": str(v) for k, v in settings.jobs.model_dump().items()},
    }


@contextmanager
def worker(settings: Settings, log_path: Path) -> Iterator[None]:
    """One ``ragserve worker --concurrency 1``, ready (model loaded) before it yields."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(RAGSERVE), "worker", "--concurrency", "1", "--loglevel", "INFO"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(settings),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while " ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def warm_model(settings: Settings) -> None:
    """Build the derived model files once, so no worker spends its start converting them."""
    service = build_service(settings)
    service.embedder.embed_documents(["warm up"])
    service.close()


def run(documents: list[TextDocument], workers: int, broker: str, base: Path) -> dict[str, float]:
    settings = settings_for(base / f"workers-{workers}", broker)
    service = build_service(settings)
    queue = CeleryQueue(make_celery(settings.jobs), settings.jobs)
    try:
        with ExitStack() as stack:
            for i in range(workers):
                stack.enter_context(worker(settings, base / f"w{workers}-{i}.log"))
            service.embedder.embed_documents(["warm up"])  # the submitter's own model, too
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            jobs = service.jobs.submit_texts("bench", documents)
            queue.submit(jobs)
            batch = jobs[0].batch_id
            while True:
                current = service.jobs.list_jobs(batch_id=batch, limit=len(jobs))
                if all(job.terminal for job in current):
                    break
                time.sleep(0.2)
            seconds = time.perf_counter() - started
        states = {job.state for job in current}
        chunks = service.get_collection("bench").chunk_count
    finally:
        queue.close()
        service.close()
    if states != {"succeeded"}:
        raise RuntimeError(f"jobs ended {states}")
    return {
        "workers": workers,
        "documents": len(documents),
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "docs_per_s": round(len(documents) / seconds, 1),
        "chunks_per_s": round(chunks / seconds, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scifact", type=Path, default=None)
    args = parser.parse_args()
    documents = corpus(args.n, args.scifact)
    results = []
    with tempfile.TemporaryDirectory(prefix="ragserve-bench-jobs-") as tmp:
        warm_model(settings_for(Path(tmp) / "warm", args.broker))
        for count in args.workers:
            result = run(documents, count, args.broker, Path(tmp))
            results.append(result)
            print(json.dumps(result))
    if len(results) >= 2:
        ratio = results[-1]["docs_per_s"] / results[0]["docs_per_s"]
        print(
            f"{results[-1]['workers']} workers / {results[0]['workers']} worker: "
            f"{ratio:.2f}x docs/s"
        )


if __name__ == "__main__":
    main()
