"""Tenant isolation: three tenants with planted markers never see one another's data.

Every tenant owns a collection named ``shared`` (two also own a second one) whose documents
share one vocabulary and carry the tenant's marker, which nobody else ever sends, and its
lure, which the other tenants put into their questions: if isolation broke, retrieval would
find the foreign documents. A seeded random sequence of requests through every read route
checks each raw response for foreign markers and each count against what the tenant did.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import httpx
import pytest
from api_server import ApiServer

SEED = 20_240_611
REQUESTS = 240
MODES = ("dense", "bm25", "hybrid")
TOPICS = (
    "The lighthouse keeper records the tide height every morning",
    "Ferry schedules change when the harbour freezes in winter",
    "The fishing cooperative sells smoked herring at the market",
    "Storm warnings are raised by the coast guard before noon",
)
USAGE_FIELDS = (
    "questions",
    "searches",
    "prompt_tokens",
    "completion_tokens",
    "documents",
    "chunks",
)
WORDS = ("tide", "ferry", "herring", "storm", "harbour", "lighthouse", "market", "winter")
# Documents per collection: every tenant has "shared", with a different count in each.
LAYOUT = {"a": {"shared": 1, "alpha": 1}, "b": {"shared": 2}, "c": {"shared": 3, "gamma": 1}}


@dataclass
class Member:
    """One tenant: its key, planted strings, documents and what it has done so far."""

    name: str
    headers: dict[str, str]
    marker: str
    lure: str
    texts: dict[str, dict[str, str]] = field(default_factory=dict)  # collection -> id -> text
    usage: dict[str, int] = field(default_factory=dict)
    questions_asked: int = 0  # the quota counts every question asked of an existing collection
    tokens: int = 0

    def count(self, field_name: str, amount: int = 1) -> None:
        self.usage[field_name] = self.usage.get(field_name, 0) + amount


@dataclass
class World:
    """The tenants and a client without credentials of its own."""

    client: httpx.Client
    members: list[Member]

    def others(self, me: Member) -> list[Member]:
        return [m for m in self.members if m is not me]

    def send(self, me: Member, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers=me.headers, **kwargs)


def plant(world: World, me: Member, collection: str, count: int) -> None:
    """Add ``count`` text documents holding the tenant's marker and lure to a collection."""
    documents: list[dict[str, Any]] = [
        {
            "source": f"note-{i}.txt",  # the same sources in every tenant's "shared"
            "title": f"Note {i} {me.marker}",
            "text": f"{TOPICS[i % len(TOPICS)]}. Ledger {me.marker} mentions {me.lure}.",
            "metadata": {"lang": "en", "year": 2020 + i, "owner": me.marker},
        }
        for i in range(count)
    ]
    response = world.send(
        me, "POST", f"/v1/collections/{collection}/documents/text", json={"documents": documents}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["added"] * count
    pairs = zip(results, documents, strict=True)
    me.texts[collection] = {result["document_id"]: doc["text"] for result, doc in pairs}
    me.count("documents", count)
    me.count("chunks", sum(r["chunks"] for r in results))


@pytest.fixture(scope="module")
def world(api_server: ApiServer) -> Iterator[World]:
    """Three tenants ("iso-<run>-a/b/c") with their documents; b authenticates by X-API-Key."""
    run = uuid.uuid4().hex[:8]
    with api_server.client() as client:
        members = []
        for suffix in LAYOUT:
            name = f"iso-{run}-{suffix}"
            key = api_server.create_key(name)
            headers = {"X-API-Key": key} if suffix == "b" else {"Authorization": f"Bearer {key}"}
            member = Member(name, headers, f"zq{uuid.uuid4().hex}", f"lure{uuid.uuid4().hex[:10]}")
            members.append(member)
        built = World(client, members)
        for member, collections in zip(members, LAYOUT.values(), strict=True):
            for collection, count in collections.items():
                plant(built, member, collection, count)
        yield built


# ---- probes: one request each, checked; they return the raw response text ---------------


@dataclass
class Probe:
    """What a probe needs: the random source, the world and the tenant sending."""

    rng: random.Random
    world: World
    me: Member

    def own_collection(self) -> str:
        return self.rng.choice(sorted(self.me.texts))

    def foreign_ids(self) -> list[str]:
        return [i for m in self.world.others(self.me) for t in m.texts.values() for i in t]

    def missing_collection(self) -> str:
        """Another tenant's own collection name, or one nobody has."""
        foreign = {c for m in self.world.others(self.me) for c in m.texts} - set(self.me.texts)
        return self.rng.choice([*sorted(foreign), f"nope-{self.rng.randrange(10**6)}"])

    def question(self) -> str:
        lures = [m.lure for m in self.world.members]
        return f"What about the {self.rng.choice(WORDS)} and {self.rng.choice(lures)}?"

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.world.send(self.me, method, path, **kwargs)


def assert_own_sources(p: Probe, collection: str, sources: list[dict[str, Any]]) -> None:
    assert {s["document_id"] for s in sources} <= set(p.me.texts[collection])


def assert_not_found(response: httpx.Response, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == code


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a Server-Sent Events body."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def probe_query(p: Probe) -> str:
    collection, stream = p.own_collection(), p.rng.random() < 0.5
    body = {"question": p.question(), "collection": collection, "stream": stream}
    body["mode"] = p.rng.choice(MODES)
    p.me.questions_asked += 1
    response = p.send("POST", "/v1/query", json=body)
    assert response.status_code == 200, response.text
    if stream:
        events = dict(parse_sse(response.text))
        assert "error" not in events
        sources, usage = events["sources"]["sources"], events["done"]["usage"]
    else:
        sources, usage = response.json()["sources"], response.json()["usage"]
    assert_own_sources(p, collection, sources)
    p.me.count("questions")
    p.me.count("prompt_tokens", usage["prompt_tokens"])
    p.me.count("completion_tokens", usage["completion_tokens"])
    p.me.tokens += usage["total_tokens"]
    return response.text


def probe_search(p: Probe) -> str:
    collection, mode = p.own_collection(), p.rng.choice(MODES)
    filters = p.rng.choice(
        [
            None,
            {"lang": "en"},
            {"year": {"$gte": 2021}},
            {"source": {"$in": ["note-0.txt", "note-2.txt"]}},
            {"document_id": {"$in": p.foreign_ids()}},
        ]
    )
    body = {"query": p.question(), "collection": collection, "mode": mode, "filters": filters}
    response = p.send("POST", "/v1/search", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert_own_sources(p, collection, results)
    if filters is not None and "document_id" in filters:
        assert results == []
    p.me.count("searches")
    return response.text


def probe_collections(p: Probe) -> str:
    response = p.send("GET", "/v1/collections")
    assert response.status_code == 200, response.text
    counts = {c["name"]: c["document_count"] for c in response.json()["collections"]}
    assert counts == {name: len(texts) for name, texts in p.me.texts.items()}
    return response.text


def probe_collection(p: Probe) -> str:
    collection = p.own_collection()
    response = p.send("GET", f"/v1/collections/{collection}")
    assert response.status_code == 200, response.text
    assert response.json()["document_count"] == len(p.me.texts[collection])
    return response.text


def probe_documents(p: Probe) -> str:
    collection = p.own_collection()
    response = p.send("GET", f"/v1/collections/{collection}/documents")
    assert response.status_code == 200, response.text
    page = response.json()
    assert {d["id"] for d in page["documents"]} == set(p.me.texts[collection])
    assert page["total"] == len(p.me.texts[collection])
    return response.text


def probe_document(p: Probe) -> str:
    collection = p.own_collection()
    document_id = p.rng.choice(sorted(p.me.texts[collection]))
    response = p.send("GET", f"/v1/collections/{collection}/documents/{document_id}")
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["owner"] == p.me.marker
    return response.text


def probe_original(p: Probe) -> str:
    collection = p.own_collection()
    document_id = p.rng.choice(sorted(p.me.texts[collection]))
    response = p.send("GET", f"/v1/collections/{collection}/documents/{document_id}/original")
    assert response.status_code == 200, response.text
    assert response.text == p.me.texts[collection][document_id]
    return response.text


def probe_usage(p: Probe) -> str:
    response = p.send("GET", "/v1/usage")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == p.me.name
    totals = {f: sum(day[f] for day in body["days"]) for f in USAGE_FIELDS}
    assert totals == {f: p.me.usage.get(f, 0) for f in USAGE_FIELDS}
    assert body["quota"]["questions_used"] == p.me.questions_asked
    assert body["quota"]["tokens_used"] == p.me.tokens
    return response.text


def probe_keys(p: Probe) -> str:
    response = p.send("GET", "/v1/keys")
    assert response.status_code == 200, response.text
    assert [k["tenant"] for k in response.json()["keys"]] == [p.me.name]
    return response.text


def probe_missing_collection(p: Probe) -> str:
    """A collection the tenant does not have: get, list, search or ask all answer 404."""
    name = p.missing_collection()
    route = p.rng.choice(["get", "documents", "search", "query"])
    if route == "query":  # refused before the quota: it does not count as a question
        body = {"question": p.question(), "collection": name, "stream": p.rng.random() < 0.5}
        response = p.send("POST", "/v1/query", json=body)
    elif route == "search":
        response = p.send("POST", "/v1/search", json={"query": p.question(), "collection": name})
    else:
        suffix = "/documents" if route == "documents" else ""
        response = p.send("GET", f"/v1/collections/{name}{suffix}")
    assert_not_found(response, "collection_not_found")
    return response.text


def probe_foreign_document(p: Probe) -> str:
    """Another tenant's document id under the tenant's own "shared" collection is 404."""
    suffix = p.rng.choice(["", "/original"])
    document_id = p.rng.choice(p.foreign_ids())
    response = p.send("GET", f"/v1/collections/shared/documents/{document_id}{suffix}")
    assert_not_found(response, "document_not_found")
    return response.text


PROBES: dict[str, tuple[Callable[[Probe], str], int]] = {  # name: (probe, weight)
    "query": (probe_query, 6),
    "search": (probe_search, 6),
    "collections": (probe_collections, 1),
    "collection": (probe_collection, 1),
    "documents": (probe_documents, 1),
    "document": (probe_document, 1),
    "original": (probe_original, 1),
    "usage": (probe_usage, 2),
    "keys": (probe_keys, 1),
    "missing collection": (probe_missing_collection, 2),
    "foreign document": (probe_foreign_document, 2),
}


def foreign_strings(world: World, me: Member) -> set[str]:
    return {s for m in world.others(me) for s in (m.marker, m.name)}


def test_random_requests_never_return_another_tenants_data(world: World) -> None:
    """Seeded random requests through every read route see only the sender's data and counts."""
    rng = random.Random(SEED)
    names, weights = list(PROBES), [weight for _, weight in PROBES.values()]
    seen: dict[str, int] = {}
    for _ in range(REQUESTS):
        me, name = rng.choice(world.members), rng.choices(names, weights)[0]
        text = PROBES[name][0](Probe(rng, world, me))
        assert {s for s in foreign_strings(world, me) if s in text} == set(), name
        seen[name] = seen.get(name, 0) + 1
    assert set(seen) == set(PROBES)
    for me in world.members:  # end on a full check of every tenant's counts
        for final in (probe_usage, probe_collections):
            final(Probe(rng, world, me))


@pytest.mark.parametrize("method", ["GET", "GET /original", "POST /reingest", "DELETE"])
def test_foreign_document_id_under_own_same_named_collection_is_404(
    world: World, method: str
) -> None:
    """No tenant reaches another's document through its own "shared" collection."""
    verb, _, suffix = method.partition(" ")
    for me, owner in permutations(world.members, 2):
        for document_id in owner.texts["shared"]:
            path = f"/v1/collections/shared/documents/{document_id}{suffix}"
            response = world.send(me, verb, path)
            assert_not_found(response, "document_not_found")
            assert owner.marker not in response.text
    for owner in world.members:
        response = world.send(owner, "GET", "/v1/collections/shared/documents")
        assert {d["id"] for d in response.json()["documents"]} == set(owner.texts["shared"])


def test_metrics_carry_no_tenant_data(world: World) -> None:
    """The unauthenticated metrics name no tenant, marker or collection of a tenant."""
    text = world.client.get("/metrics").text
    planted = {s for m in world.members for s in (m.name, m.marker, m.lure)}
    assert {s for s in planted if s in text} == set()
