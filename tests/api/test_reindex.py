"""A configuration that chunks differently re-indexes the collection in the background, while
questions keep being answered from the old index, then switches atomically.

A real ``ragserve serve`` holds 300 SciFact abstracts; a client asks questions back to back
from before the change until after the switch. Every answer succeeds; the configuration that
answers changes exactly once, from the old to the new, and never back; documents written
during the re-index are in the new index; the store's own collections never show.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, start_api_server

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifact"
DOCUMENTS = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    # No query cache: every answer during the re-index searches the live index.
    env = {"RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute", "RAGSERVE_CACHE__ENABLED": "false"}
    with start_api_server(tmp_path_factory.mktemp("reindex"), model_cache, env) as s:
        yield s


def abstracts(count: int) -> list[dict[str, str]]:
    corpus = SCIFACT / "corpus.jsonl"
    if not corpus.is_file():
        pytest.fail(f"{corpus} is missing: CI clones the repo beside shared/", pytrace=False)
    with corpus.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(count), lines, strict=False)]
    return [{"source": r["_id"], "title": r["title"], "text": r["text"]} for r in rows]


def questions(count: int) -> list[str]:
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for _, line in zip(range(count), lines, strict=False)]


class Asker(threading.Thread):
    """Asks questions back to back until stopped; keeps every status and configuration."""

    def __init__(self, client: httpx.Client, collection: str) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.collection = collection
        self.stop = threading.Event()
        self.seen: list[tuple[int, str | None, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        texts = questions(50)
        i = 0
        while not self.stop.is_set():
            body = {"question": texts[i % len(texts)], "collection": self.collection}
            response = self.client.post("/v1/query", json=body)
            i += 1
            if response.status_code != 200:
                self.errors.append(response.text)
                continue
            answer = response.json()
            self.seen.append((200, answer["config"], len(answer["sources"])))


def test_a_chunking_change_reindexes_in_the_background_and_switches_atomically(
    server: ApiServer,
) -> None:
    key = server.key(f"reindex-{uuid.uuid4().hex[:8]}")
    with server.client(key) as client, server.client(key) as asking:
        docs = abstracts(DOCUMENTS)
        for start in range(0, len(docs), 100):
            batch = {"documents": docs[start : start + 100]}
            added = client.post("/v1/collections/papers/documents/text", json=batch)
            assert added.status_code == 200, added.text
        before = client.get("/v1/collections/papers").json()
        ids_before = document_ids(client, "papers")
        assert client.put("/v1/configs/fine", json={"config": {"chunk": {"size": 64}}}).is_success

        asker = Asker(asking, "papers")
        asker.start()
        while len(asker.seen) < 5:  # answering from the old index first
            time.sleep(0.05)
        changed = client.put("/v1/collections/papers/config", json={"config": "fine"})
        assert changed.status_code == 202, changed.text
        job_id = changed.json()["job_id"]
        again = client.put("/v1/collections/papers/config", json={"config": "fine"})
        assert again.status_code == 202
        assert again.json()["job_id"] == job_id  # a retried request gets the same job
        late = {"source": "late-note", "text": "Zebrafish regenerate their hearts after injury."}
        written = client.post("/v1/collections/papers/documents/text", json={"documents": [late]})
        assert written.status_code == 200, written.text
        pending = client.get("/v1/collections/papers/config").json()
        assert pending["config"] is None  # the old configuration answers until the switch

        job = wait_for_job(client, job_id, on_running=lambda: len(asker.seen))
        answered_while_running = job.pop("answered_while_running")
        seen_at_switch = len(asker.seen)
        while len(asker.seen) < seen_at_switch + 5:  # and from the new index after
            time.sleep(0.05)
        asker.stop.set()
        asker.join(timeout=60)

    print(f"re-index {job['result']}, answers while running: {answered_while_running}, "
          f"answers in all: {len(asker.seen)}, failures: {len(asker.errors)}")  # fmt: skip
    assert job["state"] == "succeeded", job
    assert job["result"]["documents"] == DOCUMENTS + 1
    assert asker.errors == []
    assert answered_while_running > 0
    configs = [config for _, config, _ in asker.seen]
    switch = configs.index("fine@1")
    assert set(configs[:switch]) == {None}
    assert set(configs[switch:]) == {"fine@1"}
    assert all(sources > 0 for _, _, sources in asker.seen)

    with server.client(key) as client:
        after = client.get("/v1/collections/papers").json()
        assert after["document_count"] == before["document_count"] + 1
        assert after["chunk_count"] > before["chunk_count"]  # 64-token chunks: more of them
        assert document_ids(client, "papers") == ids_before | {
            written.json()["results"][0]["document_id"]
        }
        current = client.get("/v1/collections/papers/config").json()
        assert (current["config"], current["reindex_job"]) == ("fine@1", None)
        listed = [c["name"] for c in client.get("/v1/collections").json()["collections"]]
        assert listed == ["papers"]
        found = client.post("/v1/search", json={"query": "zebrafish heart", "collection": "papers"})
        assert found.json()["results"][0]["source"] == "late-note"


def document_ids(client: httpx.Client, collection: str) -> set[str]:
    ids: set[str] = set()
    while True:
        page = client.get(
            f"/v1/collections/{collection}/documents", params={"limit": 500, "offset": len(ids)}
        ).json()["documents"]
        if not page:
            return ids
        ids |= {d["id"] for d in page}


def wait_for_job(
    client: httpx.Client, job_id: str, *, on_running: Any, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Poll until the job ends; counts the answers given while it was running."""
    deadline = time.monotonic() + timeout_s
    first: int | None = None
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] == "running" and first is None:
            first = on_running()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            job["answered_while_running"] = on_running() - (first or on_running())
            return job
        time.sleep(0.1)
    pytest.fail(f"re-index job {job_id} did not end within {timeout_s} s")
