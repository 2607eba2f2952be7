"""``GET /v1/stats/answers``: statistics of the answers a real server gave."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from api_server import ApiServer

NOTE = "The harbour bell rings at noon. Ships leave the harbour at dawn."


def ask(client: httpx.Client, collection: str, question: str) -> dict[str, Any]:
    response = client.post("/v1/query", json={"question": question, "collection": collection})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stats(client: httpx.Client, **params: object) -> dict[str, Any]:
    response = client.get("/v1/stats/answers", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counts(body: dict[str, Any]) -> dict[str, int]:
    return {stage["stage"]: stage["count"] for stage in body["stages"]}


def test_stats_count_the_answers_and_cache_hits(api_server: ApiServer) -> None:
    """Before any question the window is empty; after two questions and a repeat answered
    from the cache, the collection's stats count three answers, one cached, with the stages
    of each kind; another collection's answer counts only without the filter."""
    tenant = f"stats-{uuid.uuid4().hex[:10]}"
    with api_server.client(api_server.key(tenant)) as client:
        for collection in ("harbour", "other"):
            document = {"source": "note.txt", "text": NOTE}
            response = client.post(
                f"/v1/collections/{collection}/documents/text", json={"documents": [document]}
            )
            assert response.status_code == 200, response.text
        empty = stats(client, collection="harbour")
        first = ask(client, "harbour", "When does the bell ring?")
        ask(client, "harbour", "When do ships leave?")
        uncached = stats(client, collection="harbour")
        repeat = ask(client, "harbour", "When does the bell ring?")
        ask(client, "other", "When does the bell ring?")
        harbour = stats(client, collection="harbour")
        everything = stats(client)
        latest = stats(client, collection="harbour", limit=1)
    assert {k: v for k, v in empty.items() if k != "limit"} == {
        "collection": "harbour",
        "answers": 0,
        "since": None,
        "until": None,
        "cache_hit_rate": None,
        "abstained_rate": None,
        "mean_prompt_tokens": None,
        "mean_completion_tokens": None,
        "stages": [],
    }
    assert (first["cached"], repeat["cached"]) == (False, True)
    assert (uncached["answers"], uncached["cache_hit_rate"]) == (2, 0.0)
    assert (harbour["answers"], harbour["cache_hit_rate"]) == (3, 1 / 3)
    stages = {"total": 3, "total_uncached": 2, "embed": 2, "retrieve": 2, "generate": 2, "cache": 1}
    assert counts(harbour) == stages
    assert harbour["since"] < harbour["until"]
    assert all(s["p50_ms"] <= s["p95_ms"] <= s["max_ms"] for s in harbour["stages"])
    assert (everything["collection"], everything["answers"]) == (None, 4)
    assert (latest["limit"], latest["answers"], latest["cache_hit_rate"]) == (1, 1, 1.0)


def test_bad_parameters_are_refused(api_server: ApiServer) -> None:
    """limit outside 1..10000 and a collection name that cannot exist are 422s in the error
    shape; a read-only key is forbidden."""
    tenant = f"stats-{uuid.uuid4().hex[:10]}"
    with api_server.client(api_server.key(tenant)) as client:
        refused = [
            client.get("/v1/stats/answers", params=params)
            for params in ({"limit": 0}, {"limit": 10_001}, {"collection": "no such/name"})
        ]
    with api_server.client(api_server.key(tenant, "read")) as reader:
        forbidden = reader.get("/v1/stats/answers")
    assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [
        (422, "validation_error")
    ] * 3
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
