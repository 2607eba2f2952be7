"""Originals of uploaded documents, kept for re-ingestion and download: on the local disk
(atomic, durable writes) and on an S3-compatible server (moto's, over HTTP on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer

from ragserve.blobs import BlobStore
from ragserve.errors import BackendUnavailable, DocumentNotFound

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on loopback, with a bucket ``blobs``."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    assert httpx.put(f"{endpoint}/blobs").status_code == 200
    yield endpoint
    server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {"key": "test", "secret": "test", "endpoint_url": endpoint,
            "client_kwargs": {"region_name": "us-east-1"}}  # fmt: skip


@pytest.fixture(params=["file", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return BlobStore(tmp_path.as_uri())
    endpoint = request.getfixturevalue("s3_endpoint")
    return BlobStore(f"s3://blobs/{tmp_path.name}", s3_options(endpoint))


def test_put_then_get_returns_the_bytes(blobs: BlobStore) -> None:
    """What was put is what is read back, and a second put replaces it."""
    blobs.put(KEY, b"first")
    blobs.put(KEY, b"second")
    assert blobs.get(KEY) == b"second"
    assert blobs.exists(KEY)
    assert not blobs.exists(OTHER)


def test_delete_then_get_is_not_found(blobs: BlobStore) -> None:
    """A deleted blob is gone; deleting twice is harmless."""
    blobs.put(KEY, b"x")
    blobs.delete(KEY)
    blobs.delete(KEY)
    assert not blobs.exists(KEY)
    with pytest.raises(DocumentNotFound):
        blobs.get(KEY)


def test_a_sub_folder_is_its_own_namespace(blobs: BlobStore) -> None:
    """``under("jobs")`` keeps its keys apart from the root's."""
    staged = blobs.under("jobs")
    staged.put(KEY, b"staged")
    blobs.put(KEY, b"original")
    assert (staged.get(KEY), blobs.get(KEY)) == (b"staged", b"original")
    staged.delete(KEY)
    assert blobs.get(KEY) == b"original"


@pytest.mark.parametrize("key", ["../etc/passwd", "ABCDEF12", "abc", "0123/4567"])
def test_keys_that_are_not_hex_ids_are_refused(tmp_path: Path, key: str) -> None:
    """Keys become file names, so anything but a hex id is refused."""
    with pytest.raises(ValueError, match="invalid blob key"):
        BlobStore(tmp_path.as_uri()).put(key, b"x")


def test_local_layout_and_no_temporary_files_left(tmp_path: Path) -> None:
    """Local blobs live at <root>/<2 hex>/<key>; the temporary file was renamed away."""
    BlobStore(tmp_path.as_uri()).put(KEY, b"data")
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()] == [
        Path(KEY[:2]) / KEY
    ]


def test_an_unreachable_object_store_is_a_backend_error(tmp_path: Path) -> None:
    """No S3 server at the endpoint: BackendUnavailable naming the blob store."""
    options = s3_options(f"http://127.0.0.1:{free_port()}")
    options["config_kwargs"] = {"connect_timeout": 1, "retries": {"max_attempts": 1}}
    blobs = BlobStore("s3://blobs/x", options)
    with pytest.raises(BackendUnavailable, match="blobs"):
        blobs.put(KEY, b"x")
