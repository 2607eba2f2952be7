"""API load: uncached ``POST /v1/search`` throughput and latency from concurrent HTTP clients.

    .venv/bin/python benchmarks/api_load.py [--users 32] [--duration 60] [--data-dir DIR]

The load tool is locust. It is not a project dependency, so it lives in a venv of its own
(the script looks for ``.venv-bench/bin/locust``; ``--locust`` points elsewhere):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install locust

Steps:

1. Start a real ``ragserve serve`` on a free loopback port: default settings (auth on), the
   model cache ``benchmarks/.cache/models``, and ``RAGSERVE_SECURITY__RATE_LIMIT`` raised so
   the figures measure the service, not the rate limiter. The data dir is a temp one unless
   ``--data-dir`` keeps it between runs.
2. Create an API key on the server's SQLite store, as ``ragserve keys create`` does.
3. Ingest the first ``--docs`` SciFact documents through
   ``POST /v1/collections/scifact/documents/text`` in batches (~20 docs/s on 2 cores). This is
   skipped when the collection already holds that many.
4. Send ``--warmup`` sequential searches, then run locust headless twice: a 1-user baseline
   for ``--baseline-duration`` s, then ``--users`` users for ``--duration`` s. Each user POSTs
   /v1/search (hybrid, default top_k) with a new SciFact query every time, with no wait (see
   ``locustfile.py``). ragserve has no search cache, and no user repeats a query.
5. Print requests, failures, req/s and p50/p95/p99/max (from locust's CSV stats). Also print
   the server-side p50 per stage (from /metrics histogram deltas), the CPU used by the server,
   by locust and by the whole machine, the load average at the start and end of each run, and
   the N-user ÷ 1-user throughput ratio. Then one JSON line. Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench_data import REPO_ROOT, scifact_dir

CACHE_DIR = REPO_ROOT / "benchmarks" / ".cache"
BENCH_VENV = REPO_ROOT / ".venv-bench"
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
RAGSERVE = Path(sys.executable).parent / "ragserve"
COLLECTION = "scifact"
TENANT = "bench"
RATE_LIMIT = "1000000/minute"
SEARCH_ROUTE = "/v1/search"
Buckets = dict[str, dict[float, float]]  # series -> {upper bound in s: cumulative count}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(
    data_dir: Path, log_path: Path, settings: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """``ragserve serve`` on a free loopback port, with ``RAGSERVE_*`` overrides in
    ``settings``; terminated on exit."""
    port = free_port()
    env = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(CACHE_DIR / "models"),
        "RAGSERVE_SECURITY__RATE_LIMIT": RATE_LIMIT,
        **(settings or {}),
    }
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            [str(RAGSERVE), "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, log_path, process)
    try:
        wait_until_healthy(server, timeout_s=600.0)  # the first start builds the model
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-3000:]
            sys.exit(f"error: ragserve serve exited with {server.process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    sys.exit(f"error: ragserve serve not healthy after {timeout_s:.0f} s (log {server.log_path})")


def create_key(data_dir: Path) -> str:
    """A read/write key for the bench tenant, written straight to the server's store."""
    from ragserve.security.keys import ApiKeys
    from ragserve.store.sqlite import SqliteStore

    store = SqliteStore(data_dir / "ragserve.db")
    try:
        key, _ = ApiKeys(store.accounts).create(TENANT, ["read", "write"], name="api_load")
    finally:
        store.close()
    return key


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


# --- the corpus and the queries -----------------------------------------------------------------


def read_corpus(data: Path, limit: int) -> list[dict[str, str]]:
    """The first ``limit`` SciFact documents as API text documents (title + text, like BEIR)."""
    documents: list[dict[str, str]] = []
    with (data / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            title, text = str(record.get("title", "")).strip(), str(record["text"]).strip()
            content = " ".join(part for part in (title, text) if part)
            document = {"source": str(record["_id"]), "text": content}
            if title:
                document["title"] = title[:500]
            documents.append(document)
            if len(documents) == limit:
                break
    return documents


def read_queries(data: Path) -> list[str]:
    """Every SciFact query text (all splits), in file order."""
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return [str(r["text"]).strip() for r in records if str(r.get("text", "")).strip()]


def document_count(client: httpx.Client) -> int:
    response = client.get(f"/v1/collections/{COLLECTION}")
    if response.status_code == 404:
        return 0
    response.raise_for_status()
    count: int = response.json()["document_count"]
    return count


def ensure_corpus(
    client: httpx.Client, documents: list[dict[str, str]], batch: int
) -> dict[str, Any]:
    """Post ``documents`` unless the collection already holds as many; returns a summary."""
    present = document_count(client)
    if present >= len(documents):
        print(f"corpus: {COLLECTION} already holds {present} documents, ingest skipped")
        return {"skipped": True, "documents": present}
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for start in range(0, len(documents), batch):
        response = client.post(
            f"/v1/collections/{COLLECTION}/documents/text",
            json={"documents": documents[start : start + batch]},
        )
        response.raise_for_status()
        for result in response.json()["results"]:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        done = min(start + batch, len(documents))
        log(f"  ingest: {done}/{len(documents)} docs, {time.perf_counter() - started:.0f} s")
    seconds = time.perf_counter() - started
    print(f"corpus: ingested through the API in {seconds:.0f} s: {statuses}")
    if statuses.get("failed"):
        sys.exit("error: some documents failed to ingest")
    return {"skipped": False, "seconds": round(seconds, 1), "statuses": statuses}


def warm_up(client: httpx.Client, queries: list[str], count: int, mode: str) -> None:
    """Sequential searches so the first measured requests do not load the indexes."""
    for query in queries[-count:] if count else []:
        body = {"query": query, "collection": COLLECTION, "mode": mode}
        client.post(SEARCH_ROUTE, json=body).raise_for_status()


# --- server metrics -----------------------------------------------------------------------------


def scrape(client: httpx.Client, route: str = SEARCH_ROUTE) -> Buckets:
    """Cumulative bucket counts of the stage histograms and of the ``route`` request one."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: Buckets = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "ragserve_stage_duration_seconds_bucket":
                series = labels["stage"]
            elif sample.name == "ragserve_http_request_duration_seconds_bucket" and (
                labels.get("route") == route
            ):
                series = "request"
            else:
                continue
            buckets.setdefault(series, {})[float(labels["le"])] = sample.value
    return buckets


def bucket_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Quantile in ms of the observations between two scrapes (linear within a bucket, like
    Prometheus' histogram_quantile); NaN when there were none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return round(lower * 1000, 1)
            return round((lower + (bound - lower) * (rank - below) / (count - below)) * 1000, 1)
        lower, below = bound, count
    return math.nan


def server_quantiles(before: Buckets, after: Buckets) -> dict[str, dict[str, float]]:
    """p50 per stage and p50/p99 of the whole request, server side, between two scrapes."""
    result: dict[str, dict[str, float]] = {}
    for series, counts in after.items():
        p50 = bucket_quantile(0.5, before.get(series, {}), counts)
        if not math.isnan(p50):
            result[series] = {"p50": p50}
    if "request" in result:
        result["request"]["p99"] = bucket_quantile(0.99, before["request"], after["request"])
    return result


# --- locust -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRun:
    """What one locust run needs besides its user count and duration."""

    locust: Path
    server: Server
    client: httpx.Client
    work: Path
    env: dict[str, str]
    route: str = SEARCH_ROUTE


def locust_command(run: LoadRun, users: int, seconds: int, prefix: Path) -> list[str]:
    return [
        str(run.locust),
        *("-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users)),
        *("-t", f"{seconds}s", "--host", run.server.url, "--csv", str(prefix)),
        *("--only-summary", "--reset-stats", "--stop-timeout", "10", "--loglevel", "WARNING"),
    ]


def run_load(run: LoadRun, label: str, users: int, seconds: int) -> dict[str, Any]:
    """One headless locust run; its stats plus server-side and CPU figures."""
    prefix = run.work / label
    command = locust_command(run, users, seconds, prefix)
    print(f"{label}: RAGLOAD_USERS={users} " + shlex.join(command), flush=True)
    metrics_before, load_before = scrape(run.client, run.route), load_avg()
    server_cpu, machine_before = process_cpu_s(run.server.process.pid), machine_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with (run.work / f"{label}.log").open("wb") as output:
        subprocess.run(
            command,
            env={**os.environ, **run.env, "RAGLOAD_USERS": str(users)},
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,  # locust exits 1 on any failure; the CSV says which
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    busy, total = (a - b for a, b in zip(machine_cpu(), machine_before, strict=True))
    return read_stats(prefix, run.route) | {
        "label": label,
        "users": users,
        "seconds": seconds,
        "server": server_quantiles(metrics_before, scrape(run.client, run.route)),
        "server_cpu_pct": round(100 * (process_cpu_s(run.server.process.pid) - server_cpu) / wall),
        "locust_cpu_pct": round(100 * locust_cpu / wall),
        "machine_busy_pct": round(100 * busy / total) if total else 0,
        "load_start": load_before,
        "load_end": load_avg(),
        "locust_warnings": locust_warnings(run.work / f"{label}.log"),
    }


def read_stats(prefix: Path, route: str = SEARCH_ROUTE) -> dict[str, Any]:
    """The ``route`` row of locust's ``<prefix>_stats.csv`` and its failures."""
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if not stats.is_file():
        sys.exit(f"error: locust wrote no {stats.name}; see {prefix}.log")
    with stats.open(newline="") as rows:
        row = next((r for r in csv.DictReader(rows) if r["Name"] == route), None)
    failures = prefix.with_name(prefix.name + "_failures.csv")
    with failures.open(newline="") as rows:
        errors = {r["Error"]: int(r["Occurrences"]) for r in csv.DictReader(rows)}
    if row is None:
        return {"requests": 0, "failures": 0, "errors": errors}
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": round(float(row["Requests/s"]), 2),
        **{name: float(row[column]) for name, column in PERCENTILE_COLUMNS.items()},
        "mean": round(float(row["Average Response Time"]), 1),
        "errors": errors,
    }


PERCENTILE_COLUMNS = {"p50": "50%", "p95": "95%", "p99": "99%", "max": "100%"}


def locust_warnings(path: Path) -> list[str]:
    """Locust's own warnings, e.g. that its CPU use limits the throughput it can drive."""
    lines = path.read_text(errors="replace").splitlines()
    return [line.strip() for line in lines if "WARNING" in line or "CPU usage" in line][:5]


# --- report -------------------------------------------------------------------------------------


def print_table(runs: list[dict[str, Any]]) -> None:
    header = (
        f"{'run':<10}{'users':>6}{'secs':>6}{'requests':>10}{'failed':>8}{'req/s':>8}"
        f"{'p50':>7}{'p95':>7}{'p99':>7}{'max':>7}{'srv CPU':>9}{'locust':>8}{'machine':>9}"
        "   load 1/5/15 start → end"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r['label']:<10}{r['users']:>6}{r['seconds']:>6}{r['requests']:>10}"
            f"{r['failures']:>8}{r.get('rps', 0):>8.1f}{r.get('p50', 0):>7.0f}"
            f"{r.get('p95', 0):>7.0f}{r.get('p99', 0):>7.0f}{r.get('max', 0):>7.0f}"
            f"{r['server_cpu_pct']:>8}%{r['locust_cpu_pct']:>7}%{r['machine_busy_pct']:>8}%"
            f"   {'/'.join(map(str, r['load_start']))} → {'/'.join(map(str, r['load_end']))}"
        )
    print("(latencies in ms, client side, from locust; CPU % of one core, machine % of all)")


def print_details(runs: list[dict[str, Any]]) -> None:
    for r in runs:
        server = r["server"]
        stages = ", ".join(f"{s} {v['p50']}" for s, v in server.items() if s != "request")
        request = server.get("request", {})
        print(
            f"{r['label']}: server side (from /metrics buckets, interpolated) request p50 "
            f"{request.get('p50')} ms, p99 {request.get('p99')} ms; stage p50 ms: {stages}"
        )
        for error, count in r["errors"].items():
            print(f"  {count} × {error}")
        for warning in r["locust_warnings"]:
            print(f"  locust: {warning}")


# --- main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=32, help="concurrent locust users")
    parser.add_argument("--duration", type=int, default=60, help="seconds of the N-user run")
    parser.add_argument("--baseline-duration", type=int, default=20, help="seconds, 1 user")
    parser.add_argument("--docs", type=int, default=5183, help="SciFact docs to ingest")
    parser.add_argument("--batch", type=int, default=64, help="documents per ingest request")
    parser.add_argument("--warmup", type=int, default=10, help="sequential warm-up searches")
    parser.add_argument("--mode", default="hybrid", choices=("bm25", "dense", "hybrid"))
    parser.add_argument("--data", type=Path, default=None, help="BEIR SciFact folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the server's data here")
    parser.add_argument("--locust", type=Path, default=BENCH_VENV / "bin" / "locust")
    return parser.parse_args()


def check_locust(path: Path) -> Path:
    if not path.is_file():
        sys.exit(
            f"error: locust not found at {path}; create the bench venv:\n"
            "  python3 -m venv .venv-bench && .venv-bench/bin/pip install locust"
        )
    return path


def measure(args: argparse.Namespace, locust: Path, data: Path, work: Path) -> dict[str, Any]:
    """Start the server, make sure the corpus is in, run the baseline and the load."""
    data_dir = (args.data_dir or work / "data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    queries = read_queries(data)
    (work / "queries.json").write_text(json.dumps(queries), encoding="utf-8")
    with running_server(data_dir, work / "server.log") as server:
        key = create_key(data_dir)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=600.0) as client:
            corpus = ensure_corpus(client, read_corpus(data, args.docs), args.batch)
            collection = client.get(f"/v1/collections/{COLLECTION}").json()
            warm_up(client, queries, args.warmup, args.mode)
            env = {
                "RAGLOAD_KEY": key,
                "RAGLOAD_QUERIES": str(work / "queries.json"),
                "RAGLOAD_COLLECTION": COLLECTION,
                "RAGLOAD_MODE": args.mode,
            }
            run = LoadRun(locust, server, client, work, env)
            baseline = run_load(run, "baseline", 1, args.baseline_duration)
            load = run_load(run, "load", args.users, args.duration)
    return {
        "corpus": corpus,
        "collection": collection,
        "queries": len(queries),
        "runs": [baseline, load],
    }


def main() -> None:
    args = parse_args()
    locust = check_locust(args.locust)
    data = scifact_dir(args.data)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpus {os.cpu_count()}, load at start {load_avg()}, mode {args.mode}, default top_k")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragserve-load-") as folder:
        result = measure(args, locust, data, Path(folder))
    runs = result["runs"]
    info = result["collection"]
    print(
        f"\n{COLLECTION}: {info['document_count']} docs, {info['chunk_count']} chunks; "
        f"{result['queries']} distinct queries; total runtime {time.perf_counter() - started:.0f} s"
    )
    print_table(runs)
    print_details(runs)
    baseline, load = runs
    ratio = load.get("rps", 0.0) / baseline["rps"] if baseline.get("rps") else math.nan
    print(f"throughput {load['users']} users ÷ 1 user: {ratio:.2f}×; load at end {load_avg()}")
    print(
        json.dumps(
            {"benchmark": "api_load", "cpus": os.cpu_count(), "ratio": round(ratio, 2), **result}
        )
    )
    if any(r["failures"] or not r["requests"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
