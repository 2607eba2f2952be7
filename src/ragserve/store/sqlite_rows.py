"""Conversions between domain types and the embedded store's rows, with input validation."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragserve.analysis import terms
from ragserve.errors import InputError
from ragserve.types import Chunk, DocumentRecord, Hit, Matrix, Metadata

DOCUMENT_COLUMNS = (
    "id, source, title, mime_type, content_hash, pipeline_hash, metadata, chunk_count, page_count"
)
CHUNK_SELECT = (
    'SELECT c.pk, c.id, d.id, c.ordinal, c.text, c.page, c.start, c."end", c.token_count, '
    "c.metadata, d.source, d.title FROM chunks c JOIN documents d ON d.pk = c.document_pk"
)
"""Selects what ``chunk_from_row`` reads, plus the document's source and title (10, 11)."""


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


def chunk_from_row(row: Sequence[Any]) -> Chunk:
    _, chunk_id, document_id, ordinal, text, page, start, end, token_count, metadata = row[:10]
    return Chunk(
        chunk_id, document_id, ordinal, text, page, start, end, token_count, json.loads(metadata)
    )


def document_from_row(row: Sequence[Any]) -> DocumentRecord:
    doc_id, source, title, mime_type, content_hash, pipeline_hash, metadata, chunks, pages = row
    return DocumentRecord(
        doc_id, source, title, mime_type, content_hash, pipeline_hash, json.loads(metadata),
        chunks, pages,
    )  # fmt: skip


def match_expression(query: str) -> str:
    """An FTS5 query: the OR of the query's distinct analysed terms, each a quoted string."""
    wanted = dict.fromkeys(terms(query))
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in wanted)


def hits(
    conn: sqlite3.Connection, keys: list[int], scores: list[float], retriever: str
) -> list[Hit]:
    """Hits for chunk keys in the given order, with document source and title."""
    if not keys:
        return []
    rows = conn.execute(
        f"{CHUNK_SELECT} WHERE c.pk IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
    ).fetchall()
    by_key = {row[0]: row for row in rows}
    return [
        Hit(
            chunk=chunk_from_row(by_key[key]),
            score=score,
            document_source=by_key[key][10],
            document_title=by_key[key][11],
            scores={retriever: score},
        )
        for key, score in zip(keys, scores, strict=True)
        if key in by_key
    ]
