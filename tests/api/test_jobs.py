"""Ingestion and questions as jobs, over real HTTP: accepted (202), polled until they end.

The shared server runs jobs inline (the default backend). Cancellation of queued jobs uses a
server on the Celery backend with a real broker but no worker, so its jobs stay queued.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from api_server import ApiServer, start_api_server

from ragserve.api.schemas import QueryResponse

BROKER = "redis://127.0.0.1:6379/9"
NOTE = b"The lighthouse keeper logs the tide at dawn and again at dusk.\n"


def wait_for(client: httpx.Client, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll the job until it has ended; its last state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} did not end within {timeout_s} s")


@pytest.fixture
def client(api_server: ApiServer) -> Iterator[httpx.Client]:
    with api_server.client(api_server.key(f"jobs-{uuid.uuid4().hex[:8]}")) as c:
        yield c


def test_upload_is_accepted_as_one_job_per_file_then_indexed(client: httpx.Client) -> None:
    """Two files: 202 with a job per file in one batch; both jobs succeed and the documents
    are searchable."""
    files = [
        ("files", ("tide.txt", NOTE, "text/plain")),
        ("files", ("bell.md", b"# Bell\n\nThe harbour bell rings at noon.\n", "text/markdown")),
    ]
    response = client.post("/v1/collections/harbour/documents", files=files)
    assert response.status_code == 202, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]
    job_ids = [r["job_id"] for r in body["results"]]
    assert [j["id"] for j in body["jobs"]] == job_ids
    assert {j["state"] for j in body["jobs"]} <= {"queued", "running", "succeeded"}
    assert all(j["batch_id"] == body["batch_id"] for j in body["jobs"])

    finished = [wait_for(client, job_id) for job_id in job_ids]
    assert [j["state"] for j in finished] == ["succeeded", "succeeded"]
    assert [j["result"]["status"] for j in finished] == ["added", "added"]
    assert [j["result"]["document_id"] for j in finished] == [
        r["document_id"] for r in body["results"]
    ]
    assert all(j["progress"] == 1.0 and j["attempts"] == 1 for j in finished)
    listed = client.get("/v1/jobs", params={"batch_id": body["batch_id"]}).json()["jobs"]
    assert [j["id"] for j in listed] == job_ids
    documents = client.get("/v1/collections/harbour/documents").json()["documents"]
    assert sorted(d["source"] for d in documents) == ["bell.md", "tide.txt"]
    hits = client.post("/v1/search", json={"query": "harbour bell", "collection": "harbour"})
    assert hits.json()["results"][0]["source"] == "bell.md"


def test_upload_with_wait_answers_with_outcomes(client: httpx.Client) -> None:
    """?wait=true keeps the synchronous behaviour: 200 with each file's outcome, no job."""
    files = [("files", ("tide.txt", NOTE, "text/plain"))]
    response = client.post("/v1/collections/sync/documents", params={"wait": "true"}, files=files)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["status"], result["job_id"]) == ("added", None)
    assert response.json()["jobs"] == []


def test_a_text_batch_becomes_jobs(client: httpx.Client) -> None:
    """Thirty text documents with wait=false: 202, thirty jobs, every one succeeds once."""
    documents = [
        {"source": f"log-{i}.txt", "text": f"Entry {i}: the tide turned at {i} o'clock."}
        for i in range(30)
    ]
    response = client.post(
        "/v1/collections/logs/documents/text",
        params={"wait": "false"},
        json={"documents": documents},
    )
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert len(jobs) == 30
    finished = [wait_for(client, job["id"]) for job in jobs]
    assert {(j["state"], j["attempts"]) for j in finished} == {("succeeded", 1)}
    assert client.get("/v1/collections/logs").json()["document_count"] == 30
    listed = client.get("/v1/jobs", params={"collection": "logs", "state": "succeeded"})
    assert len(listed.json()["jobs"]) == 30


def test_an_unreadable_upload_fails_with_its_reason(client: httpx.Client) -> None:
    """A PDF that is not one passes the type check but its job fails, saying why."""
    fake_pdf = b"%PDF-1.7\nthis is not really a PDF\n"
    files = [("files", ("broken.pdf", fake_pdf, "application/pdf"))]
    response = client.post("/v1/collections/broken/documents", files=files)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["results"][0]["job_id"])
    assert job["state"] == "failed"
    assert job["attempts"] == 1  # not transient: no retry
    assert "broken.pdf" in job["error"] or "PDF" in job["error"]


def test_async_query_returns_the_query_response(client: httpx.Client) -> None:
    """POST /v1/query/async: 202 with a job; its result is a QueryResponse citing the source."""
    client.post(
        "/v1/collections/asks/documents/text",
        json={"documents": [{"source": "tide.txt", "text": NOTE.decode()}]},
    )
    body = {"question": "When does the keeper log the tide?", "collection": "asks"}
    response = client.post("/v1/query/async", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status_url"] == f"/v1/jobs/{accepted['job_id']}"
    job = wait_for(client, accepted["job_id"])
    assert (job["kind"], job["state"]) == ("query", "succeeded")
    answer = QueryResponse.model_validate(job["result"])
    assert answer.sources[0].source == "tide.txt"
    assert not answer.abstained
    assert "dawn" in answer.answer


def test_async_query_refuses_what_the_sync_one_refuses(client: httpx.Client) -> None:
    """An unknown collection is a 404 and streaming a 400, before any job exists."""
    missing = client.post("/v1/query/async", json={"question": "x?", "collection": "nope"})
    assert missing.status_code == 404
    streamed = client.post(
        "/v1/query/async", json={"question": "x?", "collection": "nope", "stream": True}
    )
    assert streamed.status_code == 400
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_another_tenants_job_is_not_found(api_server: ApiServer, client: httpx.Client) -> None:
    """Tenant B gets 404 for tenant A's job, on GET and on cancel, and does not list it."""
    response = client.post(
        "/v1/collections/private/documents", files=[("files", ("tide.txt", NOTE, "text/plain"))]
    )
    job_id = response.json()["results"][0]["job_id"]
    with api_server.client(api_server.key(f"other-{uuid.uuid4().hex[:8]}")) as other:
        assert other.get(f"/v1/jobs/{job_id}").status_code == 404
        assert other.get(f"/v1/jobs/{job_id}").json()["error"]["code"] == "job_not_found"
        assert other.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
        assert other.get("/v1/jobs").json()["jobs"] == []
    assert wait_for(client, job_id)["state"] == "succeeded"


def test_metrics_count_jobs_by_state(api_server: ApiServer, client: httpx.Client) -> None:
    """/metrics exports submitted jobs (per process: summed over replicas) and the store's
    jobs per state (every replica sees them all)."""
    response = client.post(
        "/v1/collections/metered/documents", files=[("files", ("tide.txt", NOTE, "text/plain"))]
    )
    wait_for(client, response.json()["results"][0]["job_id"])
    scraped = [_metrics(url) for url in api_server.replica_urls or [api_server.url]]
    assert sum(m['ragserve_jobs_submitted_total{kind="ingest"}'] for m in scraped) >= 1
    for lines in scraped:
        assert lines['ragserve_jobs{state="succeeded"}'] >= 1
        assert lines['ragserve_jobs{state="running"}'] >= 0


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@pytest.fixture(scope="module")
def idle_celery_server(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[ApiServer]:
    """A server on the Celery backend whose queues no worker consumes: jobs stay queued."""
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    env = {
        "RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute",
        "RAGSERVE_JOBS__BACKEND": "celery",
        "RAGSERVE_JOBS__BROKER_URL": BROKER,
        "RAGSERVE_JOBS__INGEST_QUEUE": queue,
        "RAGSERVE_JOBS__QUERY_QUEUE": queue,
    }
    with start_api_server(tmp_path_factory.mktemp("idle"), model_cache, env) as server:
        yield server
    broker = redis.Redis.from_url(BROKER)
    broker.delete(queue)
    broker.close()


def test_cancel_a_queued_job(idle_celery_server: ApiServer) -> None:
    """A queued job is cancelled at once (200); cancelling it again is a 409 conflict."""
    with idle_celery_server.client(idle_celery_server.key("canceller")) as client:
        response = client.post(
            "/v1/collections/held/documents", files=[("files", ("tide.txt", NOTE, "text/plain"))]
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["results"][0]["job_id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["state"], cancelled.json()["cancel_requested"]) == (
            "cancelled",
            True,
        )
        again = client.post(f"/v1/jobs/{job_id}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "conflict"
        assert client.get("/v1/jobs", params={"state": "cancelled"}).json()["jobs"][0]["id"] == (
            job_id
        )
        assert client.get("/v1/collections/held/documents").json()["documents"] == []
