"""Originals of uploaded documents, kept for re-ingestion and download."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragserve.blobs import LocalBlobStore
from ragserve.errors import DocumentNotFound

KEY = "0123456789abcdef0123456789abcdef"


def test_put_then_get_returns_the_bytes(tmp_path: Path) -> None:
    """What was put is what is read back, and a second put replaces it."""
    blobs = LocalBlobStore(tmp_path)
    blobs.put(KEY, b"first")
    blobs.put(KEY, b"second")
    assert blobs.get(KEY) == b"second"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [KEY]


def test_delete_then_get_is_not_found(tmp_path: Path) -> None:
    """A deleted blob is gone; deleting twice is harmless."""
    blobs = LocalBlobStore(tmp_path)
    blobs.put(KEY, b"x")
    blobs.delete(KEY)
    blobs.delete(KEY)
    assert not blobs.exists(KEY)
    with pytest.raises(DocumentNotFound):
        blobs.get(KEY)


@pytest.mark.parametrize("key", ["../etc/passwd", "ABCDEF12", "abc", "0123/4567"])
def test_keys_that_are_not_hex_ids_are_refused(tmp_path: Path, key: str) -> None:
    """Keys become file names, so anything but a hex id is refused."""
    with pytest.raises(ValueError, match="invalid blob key"):
        LocalBlobStore(tmp_path).put(key, b"x")
