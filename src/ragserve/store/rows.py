"""A document's chunks validated and turned into insertable rows, for every store backend."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragserve.analysis import terms
from ragserve.errors import InputError
from ragserve.types import Chunk, DocumentRecord, Matrix, Metadata


@dataclass(frozen=True)
class ChunkRows:
    """A document's chunks ready to insert (all but their keys), computed before any lock."""

    values: list[tuple[Any, ...]]
    """``(id, ordinal, text, text_hash, page, start, end, token_count, metadata, vector)``"""
    terms: list[str]
    vectors: Matrix


def text_hash(text: str) -> str:
    """The key ``existing_vectors`` uses: sha256 hex of the chunk text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_rows(document: DocumentRecord, chunks: Sequence[Chunk], vectors: Matrix) -> ChunkRows:
    """Validate chunks and their vectors against the document; raises ``InputError``."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.size == 0 and not chunks:
        matrix = matrix.reshape(0, matrix.shape[-1] if matrix.ndim == 2 else 0)
    if matrix.ndim != 2 or matrix.shape[0] != len(chunks) or (chunks and matrix.shape[1] == 0):
        raise InputError(
            f"{document.source}: {len(chunks)} chunks need a (chunks, dimension) float32 "
            f"matrix, got shape {vectors.shape}"
        )
    if not np.isfinite(matrix).all():
        raise InputError(f"{document.source}: vectors contain NaN or infinite values")
    values, analysed = [], []
    for chunk, vector in zip(chunks, matrix, strict=True):
        if chunk.document_id != document.id:
            raise InputError(
                f"chunk {chunk.id!r} belongs to document {chunk.document_id!r}, not {document.id!r}"
            )
        metadata = dumps(chunk.metadata, f"chunk {chunk.id!r} metadata")
        values.append(
            (chunk.id, chunk.ordinal, chunk.text, text_hash(chunk.text), chunk.page, chunk.start,
             chunk.end, chunk.token_count, metadata, vector.tobytes())
        )  # fmt: skip
        analysed.append(" ".join(terms(chunk.text)))
    return ChunkRows(values, analysed, matrix)


def dumps(metadata: Metadata, what: str) -> str:
    try:
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be JSON-serialisable: {exc}") from exc


INTERNAL_MARK = "~"
"""In a collection name, marks the store's own collections (an index being built, one being
retired): API names cannot hold it, and tenants' listings leave such collections out."""


def shadow_name(live: str, tag: str) -> str:
    """The collection a new index of ``live`` is built in, before the swap."""
    return f"{live}{INTERNAL_MARK}index{INTERNAL_MARK}{tag}"


def retired_name(live: str, collection_id: int) -> str:
    """What ``live``'s previous index is called between the swap and its deletion."""
    return f"{live}{INTERNAL_MARK}retired{INTERNAL_MARK}{collection_id}"
