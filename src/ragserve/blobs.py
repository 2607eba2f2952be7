"""Original bytes of uploaded documents, kept so a document can be re-ingested or downloaded.

The local store keeps one file per document id under ``<data_dir>/blobs``; writes are atomic
(temporary file, then rename), so a reader sees the old or the new bytes, never a mix.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ragserve.errors import DocumentNotFound

_KEY = re.compile(r"^[0-9a-f]{8,64}$")


class LocalBlobStore:
    """Blobs in a local directory, keyed by document id (hex)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise DocumentNotFound(f"the original of document {key!r} is not stored") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):  # keys become file names: hex only, never a path
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key
