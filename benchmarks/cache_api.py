"""Query cache through the API: cached vs uncached ``POST /v1/query`` under concurrent load,
and Redis stopped during a query load compared with no cache at all.

    .venv/bin/python benchmarks/cache_api.py [--users 16] [--duration 30] [--data-dir DIR]

Locust comes from the bench venv, as for ``api_load.py`` (``.venv-bench/bin/locust``).
Every run is a fresh ``ragserve serve`` on one data dir (SciFact ``--docs`` ingested through
the API once), the extractive generator, hybrid retrieval, default top_k; a throwaway
``redis-server`` on a free port is the L2 (the machine's own Redis is not touched):

1. ``uncached``: ``RAGSERVE_CACHE__ENABLED=false``; users walk all SciFact queries, each with
   a suffix that makes it unique (``RAGLOAD_UNIQUE``), so every request retrieves and
   generates.
2. ``cached-l1``: cache on (L1 + Redis). The ``--hot`` first queries are asked once, then the
   users walk only those: every request is an L1 hit.
3. ``cached-l2``: the same Redis, L1 off (``L1_MAX_ENTRIES=0``): every request is a Redis
   hit, the cost of the shared level alone.
4. ``redis-down``: cache on (L1 + Redis), the workload of ``uncached`` (every lookup a miss);
   ``redis-server`` is killed after a third of the run. Compared with ``uncached``: failures
   (goal: no 5xx) and p50/p99 ratios (goal: at most 3x). Then Redis is started again on the
   same port and the script times how long the running server takes to close its breaker (it
   probes Redis every ``cache.breaker_reset_s``, 5 s) and checks that answers are written to
   Redis again.

Prints a table (client side, from locust), the cache's own counters per run (from
``/metrics``), the ratios, the recovery, and one JSON line. Exits 1 if a request failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from api_load import (
    BENCH_VENV,
    COLLECTION,
    LoadRun,
    Server,
    check_locust,
    create_key,
    ensure_corpus,
    free_port,
    load_avg,
    log,
    read_corpus,
    read_queries,
    run_load,
    running_server,
)
from bench_data import scifact_dir

QUERY_ROUTE = "/v1/query"
NO_CACHE = {"RAGSERVE_CACHE__ENABLED": "false"}


# --- a throwaway Redis --------------------------------------------------------------------------


class ThrowawayRedis:
    """``redis-server`` on a free loopback port, without persistence; stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        sys.exit(f"error: redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def throwaway_redis(directory: Path) -> Iterator[ThrowawayRedis]:
    redis = ThrowawayRedis(directory)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


# --- the cache's own counters -------------------------------------------------------------------


def cache_counters(client: httpx.Client) -> dict[str, float]:
    """``ragserve_cache_requests_total`` per level and result, and the breaker gauge."""
    from prometheus_client.parser import text_string_to_metric_families

    counters: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "ragserve_cache_requests_total":
                counters[f"{sample.labels['level']}_{sample.labels['result']}"] = sample.value
            elif sample.name == "ragserve_cache_breaker_open":
                counters["breaker_open"] = sample.value
    return counters


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {
        name: int(after[name] - before.get(name, 0.0))
        for name in sorted(after)
        if name != "breaker_open" and after[name] - before.get(name, 0.0)
    }


# --- runs ---------------------------------------------------------------------------------------


def ask(client: httpx.Client, question: str) -> dict[str, Any]:
    response = client.post(QUERY_ROUTE, json={"question": question, "collection": COLLECTION})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def serving(
    args: argparse.Namespace, work: Path, label: str, settings: dict[str, str]
) -> Iterator[tuple[Server, httpx.Client]]:
    """A server with these ``RAGSERVE_*`` settings and an authenticated client."""
    with running_server(args.data_dir, work / f"{label}.server.log", settings) as server:
        headers = {"Authorization": f"Bearer {args.key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=600.0) as client:
            yield server, client


def load(
    args: argparse.Namespace,
    work: Path,
    label: str,
    server: Server,
    client: httpx.Client,
    queries: list[str],
    *,
    unique: bool = False,
) -> dict[str, Any]:
    """One headless locust run over ``queries`` (``unique``: each sent once, with a suffix),
    with the cache counters' deltas."""
    path = work / f"{label}.queries.json"
    path.write_text(json.dumps(queries), encoding="utf-8")
    env = {
        "RAGLOAD_KEY": args.key,
        "RAGLOAD_QUERIES": str(path),
        "RAGLOAD_COLLECTION": COLLECTION,
        "RAGLOAD_ROUTE": QUERY_ROUTE,
        "RAGLOAD_UNIQUE": "1" if unique else "0",
    }
    run = LoadRun(args.locust, server, client, work, env, route=QUERY_ROUTE)
    before = cache_counters(client)
    result = run_load(run, label, args.users, args.duration)
    after = cache_counters(client)
    return result | {
        "cache": counter_delta(before, after),
        "breaker_open": after.get("breaker_open"),
    }


def warm(client: httpx.Client, queries: list[str]) -> None:
    """Ask each query once, sequentially (fills the cache, loads the indexes)."""
    for question in queries:
        ask(client, question)


def measure(args: argparse.Namespace, work: Path, data: Path) -> dict[str, Any]:
    queries = read_queries(data)
    hot = queries[: args.hot]
    with serving(args, work, "ingest", NO_CACHE) as (_, client):
        corpus = ensure_corpus(client, read_corpus(data, args.docs), args.batch)
        info = client.get(f"/v1/collections/{COLLECTION}").json()
    runs: list[dict[str, Any]] = []
    with serving(args, work, "uncached", NO_CACHE) as (server, client):
        warm(client, queries[-args.warmup :])
        runs.append(load(args, work, "uncached", server, client, queries, unique=True))
    with throwaway_redis(work) as redis:
        cached = {"RAGSERVE_CACHE__REDIS_URL": redis.url}
        with serving(args, work, "cached-l1", cached) as (server, client):
            warm(client, hot)
            runs.append(load(args, work, "cached-l1", server, client, hot))
        l2_only = {**cached, "RAGSERVE_CACHE__L1_MAX_ENTRIES": "0"}
        with serving(args, work, "cached-l2", l2_only) as (server, client):
            if not ask(client, hot[0])["cached"]:
                sys.exit("error: the L2 run found nothing in Redis")
            runs.append(load(args, work, "cached-l2", server, client, hot))
        redis.stop()
        redis.start()  # empty again: the down run starts from a cold cache
        with serving(args, work, "redis-down", cached) as (server, client):
            warm(client, queries[-args.warmup :])
            kill = threading.Timer(args.duration / 3, redis.stop)
            kill.start()
            runs.append(load(args, work, "redis-down", server, client, queries, unique=True))
            kill.join()
            recovery = recover(client, redis)
    return {
        "corpus": corpus,
        "collection": info,
        "hot": len(hot),
        "runs": runs,
        "recovery": recovery,
    }


def recover(client: httpx.Client, redis: ThrowawayRedis) -> dict[str, Any]:
    """Start Redis again (empty); time until the running server's breaker closes, and count
    the answers it has written to Redis since."""
    redis.start()
    started = time.perf_counter()
    question, n = "How long until the cache recovers?", 0
    while time.perf_counter() - started < 60:
        n += 1
        ask(client, f"{question} ({n})")  # each a miss: the L2 lookup is the breaker's probe
        if cache_counters(client).get("breaker_open") == 0.0:
            break
        time.sleep(0.25)
    closed_s = time.perf_counter() - started
    import redis as redis_py  # the project's own dependency (extra "redis")

    stored = redis_py.Redis.from_url(redis.url).dbsize()
    counters = cache_counters(client)
    return {
        "breaker_closed_after_s": round(closed_s, 2),
        "questions_until_closed": n,
        "breaker_open_now": counters.get("breaker_open"),
        "keys_in_redis_after_recovery": stored,
    }


# --- report -------------------------------------------------------------------------------------


def print_runs(runs: list[dict[str, Any]]) -> None:
    header = (
        f"{'run':<12}{'users':>6}{'requests':>10}{'failed':>8}{'req/s':>8}{'p50':>7}"
        f"{'p95':>7}{'p99':>7}{'max':>7}{'srv CPU':>9}   load 1/5/15 start → end"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r['label']:<12}{r['users']:>6}{r['requests']:>10}{r['failures']:>8}"
            f"{r.get('rps', 0):>8.1f}{r.get('p50', 0):>7.0f}{r.get('p95', 0):>7.0f}"
            f"{r.get('p99', 0):>7.0f}{r.get('max', 0):>7.0f}{r['server_cpu_pct']:>8}%"
            f"   {'/'.join(map(str, r['load_start']))} → {'/'.join(map(str, r['load_end']))}"
        )
    print("(latencies in ms, client side, from locust; CPU % of one core)")
    for r in runs:
        print(f"{r['label']}: cache {r['cache']}; errors {r['errors'] or 'none'}")


def ratios(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    base, down = runs["uncached"], runs["redis-down"]
    result = {}
    for name in ("p50", "p99"):
        result[f"redis_down_{name}_x"] = (
            round(down[name] / base[name], 2) if base.get(name) and down.get(name) else math.nan
        )
    for label in ("cached-l1", "cached-l2"):
        if base.get("rps"):
            result[f"{label}_rps_x"] = round(runs[label].get("rps", 0.0) / base["rps"], 1)
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=16, help="concurrent locust users")
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    parser.add_argument("--docs", type=int, default=5183, help="SciFact docs to ingest")
    parser.add_argument("--batch", type=int, default=64, help="documents per ingest request")
    parser.add_argument("--hot", type=int, default=200, help="distinct queries of cached runs")
    parser.add_argument("--warmup", type=int, default=10, help="sequential warm-up queries")
    parser.add_argument("--data", type=Path, default=None, help="BEIR SciFact folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the server's data here")
    parser.add_argument("--locust", type=Path, default=BENCH_VENV / "bin" / "locust")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.locust = check_locust(args.locust)
    data = scifact_dir(args.data)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpus {os.cpu_count()}, load at start {load_avg()}")
    with tempfile.TemporaryDirectory(prefix="ragserve-cache-") as folder:
        work = Path(folder)
        args.data_dir = (args.data_dir or work / "data").resolve()
        args.data_dir.mkdir(parents=True, exist_ok=True)
        args.key = create_key(args.data_dir)
        result = measure(args, work, data)
    runs = {r["label"]: r for r in result["runs"]}
    info = result["collection"]
    print(
        f"\n{COLLECTION}: {info['document_count']} docs, {info['chunk_count']} chunks; "
        f"cached runs walk {result['hot']} queries"
    )
    print_runs(result["runs"])
    figures = ratios(runs)
    print(f"ratios: {figures} (redis-down vs uncached: goal p50/p99 at most 3x)")
    print(f"recovery after Redis restart: {result['recovery']}")
    print(json.dumps({"benchmark": "cache_api", "cpus": os.cpu_count(), **figures, **result}))
    log(f"load at end {load_avg()}")
    if any(r["failures"] or not r["requests"] for r in result["runs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
