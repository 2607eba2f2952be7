"""Limits over real HTTP: request rates, daily quotas, body sizes, file counts and types.

Two servers: one with a tight per-key rate (5/minute), one with small quotas and body limits
(2 questions a day, 1 MiB uploads, 2 files a request, 64 KiB JSON bodies).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, start_api_server

MIB = 1024 * 1024
UPLOAD_LIMIT = MIB
JSON_LIMIT = 64 * 1024
BIG_UPLOAD = 64 * MIB
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def rate_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """A server allowing each API key 5 requests a minute."""
    env = {"RAGSERVE_SECURITY__RATE_LIMIT": "5/minute"}
    with start_api_server(tmp_path_factory.mktemp("rate"), model_cache, env) as server:
        yield server


@pytest.fixture(scope="module")
def limits_server(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[ApiServer]:
    """A server with 2 questions a day, 1 MiB uploads, 2 files a request, 64 KiB JSON bodies."""
    env = {
        "RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute",
        "RAGSERVE_SECURITY__QUESTIONS_PER_DAY": "2",
        "RAGSERVE_SERVER__MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "RAGSERVE_SERVER__MAX_FILES": "2",
        "RAGSERVE_SERVER__MAX_JSON_BYTES": str(JSON_LIMIT),
    }
    with start_api_server(tmp_path_factory.mktemp("limits"), model_cache, env) as server:
        yield server


def rss_bytes(server: ApiServer) -> int:
    """The server process's resident set size, from /proc."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def access_log(server: ApiServer) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in server.logs() if line.startswith("{")]
    return [r for r in records if r.get("event") == "request"]


def add_text(client: httpx.Client, collection: str) -> None:
    response = client.post(
        f"/v1/collections/{collection}/documents/text",
        json={"documents": [{"source": "facts.txt", "text": "Zarnak orbits Pelion in 41 days."}]},
    )
    assert response.status_code == 200, response.text


# ---- request rate ---------------------------------------------------------------------------


def test_the_sixth_request_in_a_minute_is_refused_with_retry_after(rate_server: ApiServer) -> None:
    """Five requests pass; the sixth gets 429 rate_limited and a Retry-After of at most 60 s."""
    with rate_server.client(rate_server.key("limits-rate")) as client:
        statuses = [client.get("/v1/collections").status_code for _ in range(5)]
        refused = client.get("/v1/collections")
    assert statuses == [200] * 5
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_the_rate_limit_is_per_key(rate_server: ApiServer) -> None:
    """A key that used up its window leaves another key of the same tenant unaffected."""
    with rate_server.client(rate_server.create_key("limits-rate-2")) as client:
        for _ in range(6):
            client.get("/v1/collections")
        assert client.get("/v1/collections").status_code == 429
    with rate_server.client(rate_server.create_key("limits-rate-2")) as other:
        assert other.get("/v1/collections").status_code == 200


# ---- daily quota ----------------------------------------------------------------------------


def test_the_question_over_the_daily_quota_is_refused(limits_server: ApiServer) -> None:
    """With 2 questions a day the third gets 429 quota_exceeded; usage shows the 2 answered."""
    question = {"question": "How long is Zarnak's orbit?", "collection": "quota"}
    with limits_server.client(limits_server.key("limits-quota")) as client:
        add_text(client, "quota")
        answered = [client.post("/v1/query", json=question).status_code for _ in range(2)]
        refused = client.post("/v1/query", json=question)
        usage = client.get("/v1/usage").json()
    assert answered == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 24 * 3600
    assert usage["quota"]["questions_used"] == 2
    assert usage["quota"]["questions_limit"] == 2
    assert [day["questions"] for day in usage["days"]] == [2]


# ---- body sizes -----------------------------------------------------------------------------


def multipart_parts(size: int) -> Iterator[bytes]:
    """A multipart body with one ``size``-byte text file, produced 1 MiB at a time."""
    yield (
        b"--limit-boundary\r\n"
        b'Content-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    chunk = b"a" * MIB
    for _ in range(size // MIB):
        yield chunk
    yield b"\r\n--limit-boundary--\r\n"


MULTIPART = {"Content-Type": "multipart/form-data; boundary=limit-boundary"}


def test_an_oversize_upload_is_refused_without_growing_memory(limits_server: ApiServer) -> None:
    """64 MiB against a 1 MiB limit is a 413, declared or chunked, and RSS barely moves."""
    url = "/v1/collections/big/documents"
    before = rss_bytes(limits_server)
    with limits_server.client(limits_server.key("limits-upload")) as client:
        body = b"".join(multipart_parts(BIG_UPLOAD))
        declared = client.post(url, content=body, headers=MULTIPART)
        del body
        try:  # no Content-Length: the server counts the bytes as they arrive
            chunked = client.post(url, content=multipart_parts(BIG_UPLOAD), headers=MULTIPART)
        except httpx.TransportError:  # the server answered and hung up while the body flowed
            chunked = None
    grown = rss_bytes(limits_server) - before
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "too_large"
    if chunked is not None:
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == "too_large"
    posts = [r for r in access_log(limits_server) if r["method"] == "POST"]
    assert [r["status"] for r in posts[-2:]] == [413, 413]  # however the client's write ended
    assert posts[-2]["latency_ms"] < 1000  # refused on Content-Length, body unread
    assert grown < BIG_UPLOAD // 2


def test_a_json_body_over_the_limit_is_refused(limits_server: ApiServer) -> None:
    """A JSON body over server.max_json_bytes is a 413, with or without Content-Length."""
    text = "x" * (2 * JSON_LIMIT)
    body = {"documents": [{"source": "big.txt", "text": text}]}
    url = "/v1/collections/json-limit/documents/text"
    encoded = json.dumps(body).encode()
    with limits_server.client(limits_server.key("limits-json")) as client:
        declared = client.post(url, json=body)
        chunked = client.post(
            url,
            content=iter([encoded[:JSON_LIMIT], encoded[JSON_LIMIT:]]),
            headers={"Content-Type": "application/json"},
        )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "too_large"
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "too_large"


# ---- uploads: counts and types --------------------------------------------------------------


def upload(
    client: httpx.Client, collection: str, *files: tuple[str, bytes], wait: bool = False
) -> httpx.Response:
    return client.post(
        f"/v1/collections/{collection}/documents",
        params={"wait": "true"} if wait else {},
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )


@pytest.fixture
def uploader(limits_server: ApiServer) -> Iterator[httpx.Client]:
    with limits_server.client(limits_server.key("limits-files")) as client:
        yield client


def test_more_files_than_allowed_is_a_400(uploader: httpx.Client) -> None:
    """Three files against server.max_files = 2 is refused as a whole."""
    files = [(f"note{i}.txt", b"A short note about Zarnak.\n") for i in range(3)]
    response = upload(uploader, "files", *files)
    assert response.status_code == 400
    assert "at most 2 files" in response.json()["error"]["message"]


def test_an_unsupported_file_alone_is_a_415(uploader: httpx.Client) -> None:
    """A PNG is not a document: 415 unsupported_file_type naming what it looks like."""
    response = upload(uploader, "files", ("picture.txt", PNG))
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_file_type"
    assert "PNG" in error["message"]


def test_an_empty_file_alone_is_a_422(uploader: httpx.Client) -> None:
    """An empty file has nothing to index: 422 empty_document."""
    response = upload(uploader, "files", ("empty.txt", b""))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_document"


def test_a_mixed_batch_reports_each_file(uploader: httpx.Client) -> None:
    """One good file and one PNG with ?wait=true: 200, one added, one failed with its reason."""
    response = upload(
        uploader,
        "mixed",
        ("good.txt", b"Zarnak orbits Pelion in 41 days.\n"),
        ("bad.txt", PNG),
        wait=True,
    )
    assert response.status_code == 200, response.text
    results = {r["source"]: r for r in response.json()["results"]}
    assert results["good.txt"]["status"] == "added"
    assert results["good.txt"]["chunks"] >= 1
    assert results["bad.txt"]["status"] == "failed"
    assert "PNG" in results["bad.txt"]["error"]


def test_a_path_in_the_file_name_is_dropped(
    limits_server: ApiServer, uploader: httpx.Client
) -> None:
    """``../../etc/passwd.txt`` is stored as ``passwd.txt`` and nothing lands outside data_dir."""
    base = limits_server.data_dir.parent
    outside_before = {p for p in base.rglob("*") if limits_server.data_dir not in p.parents}
    response = upload(
        uploader, "traversal", ("../../etc/passwd.txt", b"root is the superuser.\n"), wait=True
    )
    assert response.status_code == 200, response.text
    assert [r["source"] for r in response.json()["results"]] == ["passwd.txt"]
    listed = uploader.get("/v1/collections/traversal/documents").json()["documents"]
    assert [d["source"] for d in listed] == ["passwd.txt"]
    outside_after = {p for p in base.rglob("*") if limits_server.data_dir not in p.parents}
    assert outside_after - outside_before == set()
    assert not (base.parent / "etc").exists()
    assert not (limits_server.data_dir.parent / "etc").exists()


# ---- query bounds -----------------------------------------------------------------------------


def test_top_k_above_the_server_bound_is_a_400(uploader: httpx.Client) -> None:
    """top_k over server.max_top_k (50) is refused before any retrieval."""
    add_text(uploader, "bounds")
    body = {"question": "How long is the orbit?", "collection": "bounds", "top_k": 51}
    response = uploader.post("/v1/query", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_query"


def test_a_question_over_4000_characters_is_a_422(uploader: httpx.Client) -> None:
    """The question's length is part of the schema: 4001 characters fail validation."""
    body = {"question": "x" * 4001, "collection": "bounds"}
    response = uploader.post("/v1/query", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("body.question")
