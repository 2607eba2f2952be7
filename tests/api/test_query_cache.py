"""The query cache through real ``ragserve serve`` processes sharing one store and one Redis.

A repeated question is answered from the cache (``cached: true``) with the identical answer;
after every ingest, update or delete, whether made by this process or another one, the next
answer reflects the change; statistics and the admin clear work. L1 and L2 are both on; L2
is the Redis at 127.0.0.1:6379, DB 8.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, start_api_server

REDIS_URL = "redis://127.0.0.1:6379/8"
QUESTION = "What does the harbour bell do?"
RESULT_FIELDS = ("answer", "abstained", "sources", "cited", "standalone_question", "model")


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two API processes on one data directory (one SQLite store) and one Redis."""
    env = {
        "RAGSERVE_CACHE__REDIS_URL": REDIS_URL,
        "RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute",
    }
    base = tmp_path_factory.mktemp("cache-a")
    with start_api_server(base, model_cache, env) as a:
        shared = {**env, "RAGSERVE_DATA_DIR": str(a.data_dir)}
        with start_api_server(tmp_path_factory.mktemp("cache-b"), model_cache, shared) as b:
            yield a, b


@pytest.fixture
def tenant() -> str:
    return f"cache-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clients(replicas: tuple[ApiServer, ApiServer], tenant: str) -> Iterator[list[httpx.Client]]:
    """An admin client of the tenant on each replica; the tenant's cache is cleared after."""
    a, b = replicas
    key = a.key(tenant)
    with a.client(key) as on_a, b.client(key) as on_b:
        yield [on_a, on_b]
        on_a.delete("/v1/cache")


def add(client: httpx.Client, collection: str, source: str, text: str) -> None:
    document = {"source": source, "text": text}
    response = client.post(
        f"/v1/collections/{collection}/documents/text", json={"documents": [document]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] in ("added", "replaced")


def ask(client: httpx.Client, collection: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/query", json={"question": QUESTION, "collection": collection, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cached_now(client: httpx.Client, collection: str) -> dict[str, Any]:
    """Ask until the answer comes from the cache (the second time), and return it."""
    ask(client, collection)
    body = ask(client, collection)
    assert body["cached"] is True
    return body


def evidence(body: dict[str, Any]) -> str:
    return json.dumps([body["answer"], [(s["source"], s["snippet"]) for s in body["sources"]]])


def test_a_repeated_question_is_answered_identically_from_the_cache(
    clients: list[httpx.Client],
) -> None:
    """The second ask (spelled differently) is cached, with the same answer and sources, zero
    tokens; another replica gets it from Redis; the stream replays it with cached: true. Each
    still counts as a question."""
    a, b = clients
    add(a, "bells", "bell.txt", "The harbour bell rings at noon every day.")
    first = ask(a, "bells")
    again = a.post(
        "/v1/query", json={"question": "  what does the HARBOUR bell do", "collection": "bells"}
    )
    other = ask(b, "bells")
    with a.stream(
        "POST", "/v1/query", json={"question": QUESTION, "collection": "bells", "stream": True}
    ) as response:
        events = parse_events(response)
    assert first["cached"] is False
    assert again.json()["cached"] is other["cached"] is True
    for field in RESULT_FIELDS:
        assert again.json()[field] == first[field] == other[field], field
    assert again.json()["usage"]["total_tokens"] == 0
    assert "".join(data["text"] for name, data in events if name == "token") == first["answer"]
    assert [name for name, _ in events][-2:] == ["sources", "done"]
    assert events[-1][1]["cached"] is True
    assert a.get("/v1/usage").json()["days"][-1]["questions"] == 4  # cached ones count too


def parse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.removeprefix("data:"))))
    return events


def test_a_repeated_search_is_cached(clients: list[httpx.Client]) -> None:
    """POST /v1/search: the second identical search is cached with the same results."""
    a, _ = clients
    add(a, "bells", "bell.txt", "The harbour bell rings at noon every day.")
    body = {"query": "harbour bell", "collection": "bells"}
    first, second = a.post("/v1/search", json=body).json(), a.post("/v1/search", json=body).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["results"] == second["results"]
    assert set(second["timings"]) == {"cache"}


@pytest.mark.parametrize(
    "writer", [0, 1], ids=["writes-on-same-replica", "writes-on-other-replica"]
)
def test_no_answer_is_stale_after_an_ingest_update_or_delete(
    clients: list[httpx.Client], writer: int
) -> None:
    """Replica A has each state cached when a replica changes the collection; A's next answer
    reflects the ingest, the update, the document delete and the collection delete."""
    a, w = clients[0], clients[writer]
    add(w, "harbour", "bell.txt", "The harbour bell rings at noon every day.")
    assert "noon" in evidence(cached_now(a, "harbour"))

    add(w, "harbour", "fog.txt", "In fog the harbour bell rings every ten minutes.")
    fresh = ask(a, "harbour")
    assert fresh["cached"] is False
    assert "fog.txt" in evidence(fresh)
    assert "fog.txt" in evidence(cached_now(a, "harbour"))

    add(w, "harbour", "bell.txt", "The harbour bell now rings at dusk.")  # same source: update
    fresh = ask(a, "harbour")
    assert fresh["cached"] is False
    assert ("dusk" in evidence(fresh), "noon" in evidence(fresh)) == (True, False)
    cached_now(a, "harbour")

    fog = next(s for s in fresh["sources"] if s["source"] == "fog.txt")["document_id"]
    assert w.delete(f"/v1/collections/harbour/documents/{fog}").status_code == 204
    fresh = ask(a, "harbour")
    assert fresh["cached"] is False
    assert "fog.txt" not in evidence(fresh)
    cached_now(a, "harbour")

    assert w.delete("/v1/collections/harbour").status_code == 204
    gone = a.post("/v1/query", json={"question": QUESTION, "collection": "harbour"})
    assert gone.status_code == 404
    add(w, "harbour", "bell.txt", "The harbour bell is silent since the storm.")
    fresh = ask(a, "harbour")
    assert fresh["cached"] is False
    assert ("silent" in evidence(fresh), "dusk" in evidence(fresh)) == (True, False)


def test_parameters_key_apart(clients: list[httpx.Client]) -> None:
    """Another mode, top_k or filter is a different entry, never the cached answer."""
    a, _ = clients
    add(a, "params", "bell.txt", "The harbour bell rings at noon every day.")
    cached_now(a, "params")
    for extra in ({"mode": "bm25"}, {"top_k": 1}, {"filters": {"source": "bell.txt"}}):
        assert ask(a, "params", **extra)["cached"] is False, extra


def test_stats_count_hits_and_the_admin_clear_empties_the_tenant(
    clients: list[httpx.Client],
) -> None:
    """GET /v1/cache/stats shows both levels; DELETE /v1/cache removes the tenant's entries
    from L1 and Redis, so the next ask is computed again."""
    a, _ = clients
    add(a, "stats", "bell.txt", "The harbour bell rings at noon every day.")
    before = levels(a)
    cached_now(a, "stats")
    after = levels(a)
    cleared = a.delete("/v1/cache")
    again = ask(a, "stats")
    assert after["l1"]["hits"] == before["l1"]["hits"] + 1
    assert after["l2"]["breaker"] == "closed"
    assert 0 <= after["l1"]["hit_rate"] <= 1
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["removed"]["l1"] >= 1
    assert cleared.json()["removed"]["l2"] >= 1
    assert again["cached"] is False


def levels(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/cache/stats")
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is True
    return {level["level"]: level for level in response.json()["levels"]}


def test_cache_routes_need_the_admin_scope(replicas: tuple[ApiServer, ApiServer]) -> None:
    """A read-only key gets 403 from the stats and the clear."""
    a, _ = replicas
    with a.client(a.key("cache-reader", "read")) as reader:
        assert reader.get("/v1/cache/stats").status_code == 403
        assert reader.delete("/v1/cache").status_code == 403
