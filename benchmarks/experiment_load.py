"""An A/B experiment through the real API: two ``ragserve serve`` processes on one data dir,
simulated users, sticky assignment, the analysis and report, and promotion.

    .venv/bin/python benchmarks/experiment_load.py [--users 400] [--questions-per-user 3]
        [--concurrency 8] [--docs 1000] [--json]

Steps:

1. Start two ``ragserve serve`` processes (A and B) on one temporary data dir, so one SQLite
   store: embedded defaults (extractive answers, hybrid retrieval), the model cache
   ``benchmarks/.cache/models``, a raised rate limit, the query cache off (every answer runs
   its variant's pipeline, so latencies compare pipelines, not cache luck) and one embedder
   and BLAS thread per process (two processes share the two cores without oversubscribing
   them; see ``api_load.py``). An admin key is created on the store, as
   ``ragserve keys create`` does.
2. Ingest the first ``--docs`` SciFact documents through A
   (``POST /v1/collections/scifact/documents/text``); warm both processes with train queries.
3. Store two configurations (``PUT /v1/configs/{name}``): ``control`` = ``{}`` (the server's
   own, hybrid) and ``treatment`` = BM25 only (no query embedding, so measurably faster);
   create the experiment 50/50 by user and start it.
4. Load: ``--users`` users each ask ``--questions-per-user`` SciFact test questions (drawn at
   random), in random order, from ``--concurrency`` threads; each request goes to A or B at
   random with ``X-Ragserve-User: user-<i>``. For a ``--feedback`` fraction of answers a
   **simulated** thumbs up/down is posted to the *other* process, up with a probability that
   differs per variant (``THUMBS_UP``), so the analysis has a known effect to find.
5. Print stickiness (users served by more than one variant: must be 0; users served by both
   processes; every assignment equal to the SHA-256 bucket computed here), shares (users per
   variant with a binomial test, and the analysis' sample-ratio check), the analysis
   (``GET /v1/experiments/{id}/analysis``), the HTML report's path, the promotion (the winner
   becomes the collection's configuration; 10 more questions per process must carry its ref
   and no experiment), the ``ragserve_experiment_answers_total`` series of both processes,
   and the load's throughput and latency. ``--json`` adds one JSON line with every figure.

Exits 1 if a request failed or the stickiness or promotion checks fail.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from scipy.stats import binomtest

from api_load import COLLECTION, TENANT, ensure_corpus, load_avg, log, read_corpus, running_server
from bench_data import scifact_dir

EXPERIMENT = "bm25-vs-hybrid"
CONFIGS: dict[str, dict[str, Any]] = {"control": {}, "treatment": {"retrieve": {"mode": "bm25"}}}
SHARES = {"control": 0.5, "treatment": 0.5}
THUMBS_UP = {"control": 0.55, "treatment": 0.70}
"""Simulated users' chance of a thumbs up per variant: the effect the analysis should find."""
SERVER_SETTINGS = {
    "RAGSERVE_CACHE__ENABLED": "false",
    "RAGSERVE_EMBED__THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
PROMOTION_QUESTIONS = 20
WARMUP = 10
REPLICAS = ("A", "B")


@dataclass(frozen=True)
class Task:
    """One question of one simulated user; the random draws are made up front (seeded)."""

    user: int
    question: str
    replica: int
    feedback: bool
    draw: float


@dataclass
class Result:
    user: int
    replica: int
    status: int
    seconds: float
    answer_id: str | None = None
    config: str | None = None
    experiment: str | None = None
    variant: str | None = None
    sources: int = 0
    thumbs: str | None = None
    feedback_status: int | None = None


# --- set-up ---------------------------------------------------------------------------------


def create_admin_key(data_dir: Path) -> str:
    """An admin key for the bench tenant, written straight to the servers' store."""
    from ragserve.security.keys import ApiKeys
    from ragserve.store.sqlite import SqliteStore

    store = SqliteStore(data_dir / "ragserve.db")
    try:
        key, _ = ApiKeys(store.accounts).create(
            TENANT, ["read", "write", "admin"], name="experiment_load"
        )
    finally:
        store.close()
    return key


def split_queries(data: Path) -> tuple[list[str], list[str]]:
    """SciFact's test questions (the load) and the others (warm-up, after the promotion)."""
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    texts = {str(r["_id"]): str(r["text"]).strip() for r in records}
    with (data / "qrels" / "test.tsv").open(encoding="utf-8") as rows:
        test_ids = {row.split("\t")[0] for row in list(rows)[1:] if row.strip()}
    test = [text for qid, text in texts.items() if qid in test_ids]
    train = [text for qid, text in texts.items() if qid not in test_ids]
    return test, train


@contextmanager
def replicas(data_dir: Path, work: Path) -> Iterator[list[str]]:
    """Two servers on ``data_dir``, started one after the other (the first builds the model
    cache); yields their URLs."""
    with ExitStack() as stack:
        urls = []
        for name in REPLICAS:
            log_path = work / f"server-{name}.log"
            server = stack.enter_context(running_server(data_dir, log_path, SERVER_SETTINGS))
            urls.append(server.url)
        yield urls


def checked(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        sys.exit(f"error: {response.request.method} {response.request.url.path}: "
                 f"{response.status_code} {response.text[:500]}")  # fmt: skip
    body: dict[str, Any] = response.json()
    return body


def ask(client: httpx.Client, question: str, user: str) -> httpx.Response:
    return client.post(
        "/v1/query",
        json={"question": question, "collection": COLLECTION},
        headers={"X-Ragserve-User": user},
    )


def start_experiment(client: httpx.Client) -> dict[str, Any]:
    """Store both configurations, create the experiment 50/50 by user, start it."""
    for name, config in CONFIGS.items():
        checked(client.put(f"/v1/configs/{name}", json={"config": config}))
    body = {
        "name": f"{EXPERIMENT}-{int(time.time())}",
        "collection": COLLECTION,
        "subject": "user",
        "variants": [{"name": n, "config": n, "share": s} for n, s in SHARES.items()],
        "description": "hybrid (the server's own) against BM25 only",
    }
    created = checked(client.post("/v1/experiments", json=body))
    return checked(client.post(f"/v1/experiments/{created['id']}/start"))


# --- the load -------------------------------------------------------------------------------


def plan(args: argparse.Namespace, questions: Sequence[str]) -> list[Task]:
    rng = random.Random(args.seed)
    tasks = [
        Task(
            user,
            rng.choice(questions),
            rng.randrange(2),
            rng.random() < args.feedback,
            rng.random(),
        )
        for user in range(args.users)
        for _ in range(args.questions_per_user)
    ]
    rng.shuffle(tasks)
    return tasks


def run_task(clients: Sequence[httpx.Client], task: Task) -> Result:
    """Ask; then, for a feedback task, post the simulated thumbs to the other process."""
    started = time.perf_counter()
    try:
        response = ask(clients[task.replica], task.question, f"user-{task.user}")
    except httpx.HTTPError as exc:
        log(f"  user-{task.user} on {REPLICAS[task.replica]}: {exc!r}")
        return Result(task.user, task.replica, 0, time.perf_counter() - started)
    result = Result(task.user, task.replica, response.status_code, time.perf_counter() - started)
    if response.status_code != 200:
        return result
    body = response.json()
    result.answer_id, result.config = body["answer_id"], body["config"]
    result.experiment, result.variant = body["experiment"], body["variant"]
    result.sources = len(body["sources"])
    if task.feedback and result.variant in THUMBS_UP:
        result.thumbs = "up" if task.draw < THUMBS_UP[result.variant] else "down"
        result.feedback_status = post_feedback(clients[1 - task.replica], result)
    return result


def post_feedback(client: httpx.Client, result: Result) -> int:
    try:
        route = f"/v1/answers/{result.answer_id}/feedback"
        return client.post(route, json={"thumbs": result.thumbs}).status_code
    except httpx.HTTPError as exc:
        log(f"  feedback on {result.answer_id}: {exc!r}")
        return 0


def run_load(
    clients: Sequence[httpx.Client], tasks: Sequence[Task], concurrency: int
) -> tuple[list[Result], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda task: run_task(clients, task), tasks))
    return results, time.perf_counter() - started


def load_figures(results: Sequence[Result], seconds: float) -> dict[str, Any]:
    ok = [r.seconds * 1000 for r in results if r.status == 200]
    p50, p95, p99 = np.percentile(ok, [50, 95, 99]) if ok else (0.0, 0.0, 0.0)
    feedback = Counter(r.feedback_status for r in results if r.feedback_status is not None)
    return {
        "questions": len(results),
        "failed": sum(r.status != 200 for r in results),
        "statuses": dict(Counter(r.status for r in results)),
        "seconds": round(seconds, 1),
        "questions_per_s": round(len(results) / seconds, 1),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
        "feedback_posted": sum(feedback.values()),
        "feedback_statuses": dict(feedback),
        "per_replica": dict(Counter(REPLICAS[r.replica] for r in results)),
    }


# --- checks ---------------------------------------------------------------------------------


def stickiness(results: Sequence[Result], experiment: dict[str, Any]) -> dict[str, Any]:
    """Users seen with more than one variant (must be none), users served by both processes,
    and assignments that differ from the SHA-256 bucket computed here (must be none)."""
    from ragserve.experiments.assignment import Split

    split = Split.of({v["name"]: v["share"] for v in experiment["variants"]})
    variants: dict[int, set[str | None]] = defaultdict(set)
    replicas_of: dict[int, set[int]] = defaultdict(set)
    for r in results:
        if r.status == 200:
            variants[r.user].add(r.variant)
            replicas_of[r.user].add(r.replica)
    both = [user for user, seen in replicas_of.items() if len(seen) == 2]
    return {
        "users": len(variants),
        "users_with_several_variants": sum(len(seen) > 1 for seen in variants.values()),
        "users_served_by_both": len(both),
        "users_served_by_both_consistent": sum(len(variants[user]) == 1 for user in both),
        "answers_outside_experiment": sum(
            r.experiment != experiment["id"] for r in results if r.status == 200
        ),
        "assignments_unlike_local_hash": sum(
            seen != {split.assign(experiment["id"], f"user:user-{user}")}
            for user, seen in variants.items()
        ),
    }


def shares(results: Sequence[Result], analysis: dict[str, Any]) -> dict[str, Any]:
    """Users per variant against the configured share, binomial-tested; the analysis' SRM."""
    users = {r.user: r.variant for r in results if r.status == 200}
    counts = Counter(users.values())
    control = next(iter(SHARES))
    test = binomtest(counts[control], len(users), SHARES[control])
    srm = analysis["sample_ratio"]
    return {
        "users": {name: counts[name] for name in SHARES},
        "configured": SHARES,
        "binomial_p": round(float(test.pvalue), 4),
        "srm": {"status": srm["status"], "unit": srm["unit"], "p_value": srm["p_value"]},
    }


def winner_of(analysis: dict[str, Any]) -> tuple[str, str]:
    """The variant to promote and why: thumbs up decides, then latency, else the treatment."""
    comparison = analysis["comparisons"][0]
    for metric in ("thumbs_up", "latency_ms"):
        verdict = comparison["metrics"][metric]["verdict"]
        if verdict in ("a_better", "b_better"):
            name = comparison["control"] if verdict == "a_better" else comparison["variant"]
            return name, f"{metric} {verdict}"
    return comparison["variant"], "no significant difference: the treatment by default"


def promote(
    clients: Sequence[httpx.Client],
    experiment: dict[str, Any],
    winner: str,
    questions: Sequence[str],
) -> dict[str, Any]:
    """Promote ``winner``, then ask on both processes: every answer must carry its ref and no
    experiment; both processes must report it as the collection's configuration."""
    ref = next(v["config"] for v in experiment["variants"] if v["name"] == winner)
    promoted = checked(
        clients[0].post(f"/v1/experiments/{experiment['id']}/promote", json={"variant": winner})
    )
    answers = [
        checked(ask(clients[i % 2], question, f"user-{i}"))
        for i, question in enumerate(questions[:PROMOTION_QUESTIONS])
    ]
    configs = [checked(c.get(f"/v1/collections/{COLLECTION}/config"))["config"] for c in clients]
    with_ref = sum(a["config"] == ref and a["experiment"] is None for a in answers)
    return {
        "winner": winner,
        "ref": ref,
        "state": promoted["experiment"]["state"],
        "collection_config": promoted["collection_config"],
        "reindex_job": promoted["reindex_job"],
        "answers": len(answers),
        "answers_with_winner_and_no_experiment": with_ref,
        "collection_config_per_replica": dict(zip(REPLICAS, configs, strict=True)),
        "ok": with_ref == len(answers)
        and configs == [ref, ref]
        and promoted["reindex_job"] is None,
    }


def variant_counters(client: httpx.Client, experiment_id: str) -> dict[str, int]:
    """``ragserve_experiment_answers_total`` of one process, summed over ``cached``."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, int] = defaultdict(int)
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "ragserve_experiment_answers_total" and (
                sample.labels["experiment"] == experiment_id
            ):
                counts[sample.labels["variant"]] += int(sample.value)
    return dict(counts)


# --- report ---------------------------------------------------------------------------------


def print_variants(analysis: dict[str, Any]) -> None:
    header = (
        f"{'variant':<10}{'config':<13}{'answers':>8}{'users':>7}{'latency mean [95% CI]':>25}"
        f"{'p50':>7}{'p95':>7}{'sources':>9}{'thumbs up (n)':>16}"
    )
    print(header)
    print("-" * len(header))
    for v in analysis["variants"]:
        latency, found, thumbs = (
            v["metrics"][m] for m in ("latency_ms", "sources_found", "thumbs_up")
        )
        interval = f"{latency['value']:.1f} [{latency['ci_low']:.1f}, {latency['ci_high']:.1f}]"
        print(
            f"{v['name']:<10}{v['config']:<13}{v['count']:>8}{v['subjects']:>7}{interval:>25}"
            f"{latency['quantiles']['p50']:>7.1f}{latency['quantiles']['p95']:>7.1f}"
            f"{_percent(found['value']):>9}{_percent(thumbs['value']):>9} ({thumbs['count']})"
        )
    print("(latency: the server's total per answer, ms; sources: answers with any source)")


def print_comparison(comparison: dict[str, Any]) -> None:
    print(f"\n{comparison['variant']} against {comparison['control']}:")
    header = (
        f"{'metric':<20}{'control':>9}{'variant':>9}{'diff':>9}{'95% CI':>20}"
        f"{'p':>10}{'MDE':>8}  verdict"
    )
    print(header)
    print("-" * len(header))
    for name, m in comparison["metrics"].items():
        show = _percent if m["kind"] == "rate" else _ms
        interval = f"[{show(m['ci_low'])}, {show(m['ci_high'])}]"
        p = "—" if m["p_value"] is None else f"{m['p_value']:.2g}"
        print(
            f"{name:<20}{show(m['control_value']):>9}{show(m['variant_value']):>9}"
            f"{show(m['difference']):>9}{interval:>20}{p:>10}"
            f"{show(m['minimum_detectable_effect']):>8}  {m['verdict']}"
        )
    print("(diff, CI and MDE: variant − control; rates in percentage points, means in ms)")
    print(comparison["summary"])


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_results(figures: dict[str, Any]) -> None:
    sticky, split, load = figures["stickiness"], figures["shares"], figures["load"]
    print(
        f"\nstickiness: {sticky['users']} users; {sticky['users_with_several_variants']} served "
        f"by more than one variant (must be 0); {sticky['users_served_by_both']} served by both "
        f"processes, {sticky['users_served_by_both_consistent']} of them always by one variant; "
        f"{sticky['assignments_unlike_local_hash']} assignments unlike the SHA-256 bucket "
        f"computed here; {sticky['answers_outside_experiment']} answers outside the experiment"
    )
    srm = split["srm"]
    print(
        f"shares: users {split['users']} against {split['configured']}: binomial p = "
        f"{split['binomial_p']}; analysis SRM {srm['status']} (by {srm['unit']}, p = "
        f"{srm['p_value'] if srm['p_value'] is None else round(srm['p_value'], 4)})"
    )
    print(
        f"feedback: SIMULATED thumbs on {load['feedback_posted']} answers (posted to the other "
        f"process; statuses {load['feedback_statuses']}), P(up) = {THUMBS_UP}\n"
    )
    print_variants(figures["analysis"])
    for comparison in figures["analysis"]["comparisons"]:
        print_comparison(comparison)
    print(f"\nreport: {figures['report']}")
    promoted = figures["promotion"]
    print(
        f"promotion: {promoted['winner']} ({figures['winner_reason']}) -> experiment "
        f"{promoted['state']}, collection config {promoted['collection_config']}, re-index job "
        f"{promoted['reindex_job']}; {promoted['answers_with_winner_and_no_experiment']}/"
        f"{promoted['answers']} next answers on A and B carry config {promoted['ref']} and "
        f"experiment null; GET collection config: {promoted['collection_config_per_replica']}"
    )
    print(
        f"/metrics ragserve_experiment_answers_total per process: {figures['metrics']} "
        f"(answers the clients saw: {figures['answers_per_variant']})"
    )
    print(
        f"load: {load['questions']} questions ({load['per_replica']}) from "
        f"{figures['concurrency']} threads in {load['seconds']} s = {load['questions_per_s']} "
        f"questions/s (feedback posts besides); p50 {load['p50_ms']} ms, p95 {load['p95_ms']} "
        f"ms, p99 {load['p99_ms']} ms client side; failed {load['failed']} {load['statuses']}"
    )


# --- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=400, help="simulated users")
    parser.add_argument("--questions-per-user", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--docs", type=int, default=1000, help="SciFact docs to ingest")
    parser.add_argument("--batch", type=int, default=64, help="documents per ingest request")
    parser.add_argument("--feedback", type=float, default=0.5, help="fraction of answers judged")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--report", type=Path, default=Path("/tmp/ragserve-experiment-report.html"))
    parser.add_argument("--data", type=Path, default=None, help="BEIR SciFact folder")
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    return parser.parse_args()


def measure(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    test, train = split_queries(data)
    data_dir = work / "data"
    data_dir.mkdir()
    with replicas(data_dir, work) as urls:
        headers = {"Authorization": f"Bearer {create_admin_key(data_dir)}"}
        limits = httpx.Limits(max_connections=args.concurrency * 2)
        with ExitStack() as stack:
            clients = [
                stack.enter_context(
                    httpx.Client(base_url=url, headers=headers, timeout=120.0, limits=limits)
                )
                for url in urls
            ]
            corpus = ensure_corpus(clients[0], read_corpus(data, args.docs), args.batch)
            for client in clients:
                for question in train[:WARMUP]:
                    checked(ask(client, question, "warm-up"))
            experiment = start_experiment(clients[0])
            log(f"experiment {experiment['id']} running; load: {args.users} users")
            results, seconds = run_load(clients, plan(args, test), args.concurrency)
            analysis = checked(clients[1].get(f"/v1/experiments/{experiment['id']}/analysis"))
            report = clients[0].get(f"/v1/experiments/{experiment['id']}/report")
            report.raise_for_status()
            args.report.write_text(report.text, encoding="utf-8")
            winner, reason = winner_of(analysis)
            metrics = {
                name: variant_counters(c, experiment["id"])
                for name, c in zip(REPLICAS, clients, strict=True)
            }
            promotion = promote(clients, experiment, winner, train[WARMUP:])
    return {
        "corpus": corpus,
        "experiment": experiment,
        "load": load_figures(results, seconds),
        "stickiness": stickiness(results, experiment),
        "shares": shares(results, analysis),
        "analysis": analysis,
        "report": str(args.report),
        "winner_reason": reason,
        "promotion": promotion,
        "metrics": metrics,
        "answers_per_variant": dict(Counter(r.variant for r in results if r.status == 200)),
    }


def main() -> None:
    args = parse_args()
    data = scifact_dir(args.data)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpus {os.cpu_count()}, load at start {load_avg()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragserve-experiment-") as folder:
        figures = measure(args, data, Path(folder)) | {"concurrency": args.concurrency}
    print_results(figures)
    print(f"total runtime {time.perf_counter() - started:.0f} s; load at end {load_avg()}")
    if args.json:
        print(json.dumps({"benchmark": "experiment_load", "cpus": os.cpu_count(), **figures}))
    sticky, load = figures["stickiness"], figures["load"]
    metered = {v: sum(m.get(v, 0) for m in figures["metrics"].values()) for v in SHARES}
    failed = [
        name
        for name, bad in (
            ("requests", load["failed"] > 0 or set(load["feedback_statuses"]) - {201}),
            (
                "stickiness",
                sticky["users_with_several_variants"] or sticky["assignments_unlike_local_hash"],
            ),
            ("experiment", sticky["answers_outside_experiment"]),
            ("promotion", not figures["promotion"]["ok"]),
            ("metrics", metered != figures["answers_per_variant"]),
        )
        if bad
    ]
    if failed:
        sys.exit(f"FAILED: {', '.join(failed)}")
    print("all checks passed: requests, stickiness, experiment, promotion, metrics")


if __name__ == "__main__":
    main()
