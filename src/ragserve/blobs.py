"""Original bytes of uploaded documents (kept so a document can be re-ingested or downloaded)
and uploads waiting for their ingestion job, on any fsspec filesystem.

``file://`` (the default, ``<data_dir>/blobs``) writes atomically and durably: a temporary
file, fsync, then rename, so a reader sees the old or the new bytes, never a mix, even after a
crash. Object stores (``s3://bucket/prefix``, the ``s3`` extra) replace an object whole by
nature. Keys are hex ids, stored as ``<root>/<first two digits>/<key>``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ragserve.errors import (
    BackendUnavailable,
    ConfigError,
    DocumentNotFound,
    MissingDependencyError,
)

_KEY = re.compile(r"^[0-9a-f]{8,64}$")
_PART = re.compile(r"^[a-z0-9_-]{1,32}$")
_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs")}
T = TypeVar("T")


class BlobStore:
    """Blobs under one fsspec URL, keyed by hex id."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        try:
            self._fs, self._root = fsspec.core.url_to_fs(self.url, **dict(storage_options or {}))
        except ImportError as exc:
            package, extra = _EXTRAS.get(url.partition(":")[0], (str(exc.name), "s3"))
            raise MissingDependencyError(package, extra) from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid blobs.url {url!r}: {exc}") from exc
        self._local = isinstance(self._fs, LocalFileSystem)
        self._options = dict(storage_options or {})

    def under(self, part: str) -> BlobStore:
        """The store of a sub-folder (e.g. ``jobs`` for uploads awaiting ingestion)."""
        if not _PART.match(part):
            raise ValueError(f"invalid blob folder {part!r}")
        return BlobStore(f"{self.url}/{part}", self._options)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self._local:
            _write_local(Path(path), data)
        else:
            self._call(lambda: self._fs.pipe_file(path, data))

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            data: bytes = self._call(lambda: self._fs.cat_file(path))
        except FileNotFoundError as exc:
            raise DocumentNotFound(f"the original of {key!r} is not stored") from exc
        return data

    def exists(self, key: str) -> bool:
        path = self._path(key)
        found: bool = self._call(lambda: self._fs.isfile(path))
        return found

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            self._call(lambda: self._fs.rm_file(path))

    def _path(self, key: str) -> str:
        if not _KEY.match(key):  # keys become file names: hex only, never a path
            raise ValueError(f"invalid blob key {key!r}")
        return f"{self._root}/{key[:2]}/{key}"

    def _call(self, action: Callable[[], T]) -> T:
        """Run a filesystem call; a missing file stays ``FileNotFoundError``, any other
        failure of the storage becomes ``BackendUnavailable``."""
        try:
            return action()
        except FileNotFoundError:
            raise
        except Exception as exc:  # s3fs and friends raise their clients' own errors too
            raise BackendUnavailable("blobs", f"{self.url}: {exc}") from exc


def _write_local(path: Path, data: bytes) -> None:
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
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself survives a power loss only once its folder is synced
        os.fsync(directory)
    finally:
        os.close(directory)
