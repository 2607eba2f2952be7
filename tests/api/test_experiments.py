"""An A/B experiment through two real ``ragserve serve`` processes sharing one store.

Users are assigned by ``X-Ragserve-User``: each user gets the same variant from either process,
variants get their share of users within a binomial tolerance, every answer is recorded for the
analysis (means, intervals, p-values), feedback lands on answer ids, and promotion makes the
winner the collection's configuration for the next answers on both processes.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, start_api_server
from scipy.stats import binomtest

from ragserve.store.experiments import EvalRunRecord

DOCS = Path(__file__).resolve().parents[2] / "docs"
QUESTIONS = (
    "How are answers cached?",
    "What does the reconciler do?",
    "How is a tenant isolated?",
    "Which store does ragserve use by default?",
)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two API processes on one data directory (one SQLite store)."""
    env = {"RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute"}
    with start_api_server(tmp_path_factory.mktemp("exp-a"), model_cache, env) as a:
        shared = {**env, "RAGSERVE_DATA_DIR": str(a.data_dir)}
        with start_api_server(tmp_path_factory.mktemp("exp-b"), model_cache, shared) as b:
            yield a, b


@pytest.fixture
def tenant() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admins(
    replicas: tuple[ApiServer, ApiServer], tenant: str
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """An admin client of a fresh tenant on each process."""
    a, b = replicas
    key = a.key(tenant)
    with a.client(key) as on_a, b.client(key) as on_b:
        yield on_a, on_b


def ingest_docs(client: httpx.Client, collection: str) -> None:
    documents = [
        {"source": path.name, "text": path.read_text(encoding="utf-8")}
        for path in sorted(DOCS.glob("*.md"))
    ]
    response = client.post(
        f"/v1/collections/{collection}/documents/text", json={"documents": documents}
    )
    assert response.status_code == 200, response.text


def put_config(client: httpx.Client, name: str, config: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"/v1/configs/{name}", json={"config": config})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def start_experiment(client: httpx.Client, collection: str, name: str) -> dict[str, Any]:
    put_config(client, "control", {})
    put_config(client, "lexical", {"retrieve": {"mode": "bm25"}})
    body = {
        "name": name,
        "collection": collection,
        "variants": [
            {"name": "a", "config": "control", "share": 0.5},
            {"name": "b", "config": "lexical", "share": 0.5},
        ],
    }
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    experiment: dict[str, Any] = created.json()
    assert experiment["state"] == "draft"
    assert [v["config"] for v in experiment["variants"]] == ["control@1", "lexical@1"]
    started = client.post(f"/v1/experiments/{experiment['id']}/start")
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running"
    return experiment


def ask(client: httpx.Client, collection: str, question: str, user: str) -> dict[str, Any]:
    response = client.post(
        "/v1/query",
        json={"question": question, "collection": collection},
        headers={"X-Ragserve-User": user},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_experiment_assigns_stably_records_analyses_and_promotes(
    admins: tuple[httpx.Client, httpx.Client], replicas: tuple[ApiServer, ApiServer]
) -> None:
    a, b = admins
    ingest_docs(a, "handbook")
    experiment = start_experiment(a, "handbook", "retrieval-mode")

    variants: dict[str, set[str]] = defaultdict(set)
    answer_ids: dict[str, list[str]] = defaultdict(list)
    users = [f"user-{i}" for i in range(120)]
    for i, user in enumerate(users):
        for turn, client in enumerate((a, b)):  # every user asks both processes
            body = ask(client, "handbook", QUESTIONS[(i + turn) % len(QUESTIONS)], user)
            assert body["experiment"] == experiment["id"]
            assert body["config"] == {"a": "control@1", "b": "lexical@1"}[body["variant"]]
            variants[user].add(body["variant"])
            answer_ids[body["variant"]].append(body["answer_id"])
    assert all(len(assigned) == 1 for assigned in variants.values()), "a user switched variant"
    in_a = sum(assigned == {"a"} for assigned in variants.values())
    assert binomtest(in_a, len(users), 0.5).pvalue > 0.001

    for answer_id in answer_ids["a"][:30]:
        assert a.post(f"/v1/answers/{answer_id}/feedback", json={"thumbs": "up"}).status_code == 201
    for answer_id in answer_ids["b"][:30]:
        response = b.post(f"/v1/answers/{answer_id}/feedback", json={"score": 2, "comment": "meh"})
        assert response.status_code == 201, response.text
    refused = a.post(f"/v1/answers/{uuid.uuid4().hex}/feedback", json={"thumbs": "up"})
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "answer_not_found"
    both = a.post(f"/v1/answers/{answer_ids['a'][0]}/feedback", json={"thumbs": "up", "score": 3})
    assert both.status_code == 422

    analysis = b.get(f"/v1/experiments/{experiment['id']}/analysis").json()
    json.dumps(analysis, allow_nan=False)
    counts = {v["name"]: v["count"] for v in analysis["variants"]}
    assert counts == {"a": len(answer_ids["a"]), "b": len(answer_ids["b"])}
    assert analysis["sample_ratio"]["status"] == "ok"
    latency = analysis["variants"][0]["metrics"]["latency_ms"]
    assert latency["count"] == counts["a"]
    assert latency["ci_low"] <= latency["value"] <= latency["ci_high"]
    assert analysis["variants"][0]["metrics"]["thumbs_up"]["value"] == 1.0
    assert analysis["variants"][1]["metrics"]["score"]["value"] == 2.0
    (comparison,) = analysis["comparisons"]
    assert (comparison["variant"], comparison["control"]) == ("b", "a")
    compared = comparison["metrics"]["latency_ms"]
    assert 0.0 <= compared["p_value"] <= 1.0
    assert compared["verdict"] in ("a_better", "b_better", "no_difference")
    report = a.get(f"/v1/experiments/{experiment['id']}/report")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert report.text.count('src="data:image/png;base64,') >= 2

    metrics = a.get("/metrics").text + b.get("/metrics").text
    for variant in ("a", "b"):
        assert f'experiment="{experiment["id"]}",variant="{variant}"' in metrics

    promoted = a.post(f"/v1/experiments/{experiment['id']}/promote", json={"variant": "b"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["experiment"]["state"] == "promoted"
    assert promoted.json()["collection_config"] == "lexical@1"
    assert promoted.json()["reindex_job"] is None
    for user in users[:10]:
        for client in (a, b):  # the other process sees the promotion at once too
            body = ask(client, "handbook", QUESTIONS[0], user)
            assert (body["config"], body["experiment"], body["variant"]) == (
                "lexical@1",
                None,
                None,
            )
    current = b.get("/v1/collections/handbook/config").json()
    assert current["config"] == "lexical@1"
    assert current["resolved"]["retrieve"]["mode"] == "bm25"


def test_assignment_is_hidden_from_non_admins_and_one_experiment_runs_per_collection(
    admins: tuple[httpx.Client, httpx.Client], replicas: tuple[ApiServer, ApiServer], tenant: str
) -> None:
    a, b = admins
    ingest_docs(a, "notes")
    experiment = start_experiment(a, "notes", "first")
    reader = replicas[0].key(tenant, "read")
    with replicas[1].client(reader) as user_client:
        body = ask(user_client, "notes", QUESTIONS[0], "someone")
    assert (body["config"], body["experiment"], body["variant"]) == (None, None, None)
    assert len(body["answer_id"]) == 32
    with replicas[1].client(reader) as user_client:
        forbidden = user_client.get(f"/v1/experiments/{experiment['id']}/analysis")
    assert forbidden.status_code == 403

    second = {
        "name": "second",
        "collection": "notes",
        "variants": [
            {"name": "x", "config": "control", "share": 0.3},
            {"name": "y", "config": "lexical", "share": 0.7},
        ],
    }
    created = a.post("/v1/experiments", json=second)
    assert created.status_code == 201, created.text
    refused = b.post(f"/v1/experiments/{created.json()['id']}/start")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"
    paused = a.post(f"/v1/experiments/{experiment['id']}/pause")
    assert paused.json()["state"] == "paused"
    body = ask(b, "notes", QUESTIONS[1], "someone")  # paused: the collection's own config
    assert (body["config"], body["experiment"]) == (None, None)
    assert b.post(f"/v1/experiments/{experiment['id']}/stop").json()["state"] == "stopped"
    assert a.post(f"/v1/experiments/{created.json()['id']}/start").status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"config": {"retrieve": {"mode": "nearest"}}}, "retrieve.mode"),
        ({"config": {"chunk": {"sise": 100}}}, "chunk.sise"),
        ({"config": {"retriever": {}}}, "retriever"),
        ({"config": {"rerank": {"name": "cohere"}}}, "rerank.name"),
        ({"config": {}, "base": "missing"}, "missing"),
    ],
)
def test_invalid_configurations_are_refused_with_the_field_named(
    admins: tuple[httpx.Client, httpx.Client], body: dict[str, Any], fragment: str
) -> None:
    response = admins[0].put("/v1/configs/broken", json=body)
    assert response.status_code in (400, 404, 422), response.text
    assert fragment in response.json()["error"]["message"]


def test_invalid_experiments_are_refused(admins: tuple[httpx.Client, httpx.Client]) -> None:
    a, _ = admins
    ingest_docs(a, "small")
    put_config(a, "control", {})
    put_config(a, "tiny-chunks", {"chunk": {"size": 64, "overlap": 8}})

    def create(variants: list[dict[str, Any]]) -> httpx.Response:
        return a.post(
            "/v1/experiments", json={"name": "bad", "collection": "small", "variants": variants}
        )

    over = create(
        [
            {"name": "a", "config": "control", "share": 0.6},
            {"name": "b", "config": "control", "share": 0.6},
        ]
    )
    assert over.status_code == 400
    assert "sum to 1" in over.json()["error"]["message"]
    reindexing = create(
        [
            {"name": "a", "config": "control", "share": 0.5},
            {"name": "b", "config": "tiny-chunks", "share": 0.5},
        ]
    )
    assert reindexing.status_code == 400
    assert "ragserve eval" in reindexing.json()["error"]["message"]
    unknown = create(
        [
            {"name": "a", "config": "control", "share": 0.5},
            {"name": "b", "config": "nowhere", "share": 0.5},
        ]
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "config_not_found"


def test_stored_evaluation_runs_are_listed_shown_and_reported(
    admins: tuple[httpx.Client, httpx.Client], replicas: tuple[ApiServer, ApiServer], tenant: str
) -> None:
    a, b = admins
    runs = [
        EvalRunRecord(
            id=uuid.uuid4().hex,
            tenant=tenant,
            kind="beir",
            dataset="scifact",
            dataset_fingerprint="00112233aabbccdd",
            config_hash=config_hash,
            config={"retrieve": {"mode": mode}},
            metrics={"ndcg@10": score},
            per_query={f"q{i}": {"ndcg@10": score} for i in range(5)},
            timing={"query_seconds": 1.5},
            label=mode,
        )
        for mode, config_hash, score in (("hybrid", "aa" * 8, 0.73), ("bm25", "bb" * 8, 0.68))
    ]
    store = replicas[0].open_store()
    try:
        for run in runs:
            store.experiments.put_eval_run(run)
    finally:
        store.close()
    listed = a.get("/v1/eval/runs").json()["runs"]
    assert [r["label"] for r in listed] == ["bm25", "hybrid"]  # newest first
    assert all(r["per_query"] is None for r in listed)
    only = b.get("/v1/eval/runs", params={"config_hash": "aa" * 8}).json()["runs"]
    assert [r["id"] for r in only] == [runs[0].id]
    shown = b.get(f"/v1/eval/runs/{runs[1].id[:10]}", params={"per_query": "true"}).json()
    assert shown["id"] == runs[1].id
    assert shown["metrics"] == {"ndcg@10": 0.68}
    assert len(shown["per_query"]) == 5
    report = a.get(f"/v1/eval/runs/{runs[0].id}/report")
    assert report.status_code == 200
    assert 'src="data:image/png;base64,' in report.text
    missing = a.get(f"/v1/eval/runs/{uuid.uuid4().hex}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "eval_run_not_found"
