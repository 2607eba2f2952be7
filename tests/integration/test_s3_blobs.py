"""Uploaded originals on S3-compatible storage (moto's server over HTTP on loopback): an
upload job stages its bytes there, ingests from them and keeps the original for download."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from ragserve.config import BlobSettings, EmbedSettings, Settings
from ragserve.service import RagService, build_service

NOTE = b"The lighthouse keeper logs the tide at dawn.\n"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    assert httpx.put(f"{endpoint}/ragserve").status_code == 200
    yield endpoint
    server.stop()


@pytest.fixture
def service(tmp_path: Path, model_cache: Path, s3_endpoint: str) -> Iterator[RagService]:
    blobs = BlobSettings(
        url=f"s3://ragserve/{tmp_path.name}",
        storage_options={"key": "k", "secret": "s", "endpoint_url": s3_endpoint,
                         "client_kwargs": {"region_name": "us-east-1"}},
    )  # fmt: skip
    settings = Settings(
        data_dir=tmp_path / "data", embed=EmbedSettings(cache_dir=model_cache), blobs=blobs
    )
    svc = build_service(settings)
    yield svc
    svc.close()


def test_an_upload_job_runs_from_s3_and_keeps_the_original_there(
    service: RagService, tmp_path: Path
) -> None:
    """Staged on S3, ingested by the job, the original downloadable; nothing left on disk."""
    (job,) = service.jobs.submit_uploads("kb", [("tide.txt", NOTE)])
    assert service.jobs.staged.get(job.id) == NOTE
    outcome = service.jobs.run(job.id, "test-worker")
    assert outcome.job is not None
    assert (outcome.job.state, outcome.job.result["status"]) == ("succeeded", "added")  # type: ignore[index]
    assert not service.jobs.staged.exists(job.id)
    document_id = outcome.job.result["document_id"]  # type: ignore[index]
    record, original = service.document_original("kb", document_id)
    assert (record.source, original) == ("tide.txt", NOTE)
    assert not (tmp_path / "data" / "blobs").exists()
    service.delete_document("kb", document_id)
    assert not service.blobs.exists(document_id)
