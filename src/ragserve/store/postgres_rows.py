"""Conversions between domain types and the server store's rows, and the ``tsvector`` and
``tsquery`` literals built from analysed terms."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ragserve.store.postgres_connections import Connection
from ragserve.types import Chunk, DocumentRecord, Hit, Matrix

DOCUMENT_COLUMNS = (
    "id, source, title, mime_type, content_hash, pipeline_hash, metadata, chunk_count, page_count"
)
CHUNK_COLUMNS = (
    'c.id, d.id, c.ordinal, c.text, c.page, c.start, c."end", c.token_count, c.metadata, '
    "d.source, d.title"
)
"""What ``chunk_from_row`` reads, then the document's source and title (9, 10)."""
CHUNK_JOIN = "chunks c JOIN documents d ON d.pk = c.document_pk"

MAX_POSITIONS = 256
"""A ``tsvector`` keeps at most this many positions of one lexeme: its term frequency cap."""
MAX_LEXEME_BYTES = 2046
"""PostgreSQL refuses longer lexemes; such terms are left out of the ``tsvector``."""


def document_match(match: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition (``AND ...``, empty for None) keeping documents whose source or title
    contains ``match`` ignoring case, and its parameters. ``lower()`` folds by the database's
    ``LC_CTYPE``: every letter with a lower case in a UTF-8 locale (``C.UTF-8``,
    ``en_US.UTF-8``), ASCII only under plain ``C``. ``strpos`` has no wildcards, so ``%``,
    ``_`` and ``\\`` match themselves."""
    if match is None:
        return "", ()
    if "\x00" in match:  # PostgreSQL text never holds NUL (and refuses it as a parameter)
        return " AND false", ()
    condition = (
        " AND (strpos(lower(source), lower(%s)) > 0"
        " OR strpos(lower(coalesce(title, '')), lower(%s)) > 0)"
    )
    return condition, (match, match)


def chunk_from_row(row: Sequence[Any]) -> Chunk:
    chunk_id, document_id, ordinal, text, page, start, end, token_count, metadata = row[:9]
    return Chunk(chunk_id, document_id, ordinal, text, page, start, end, token_count, metadata)


def hit_from_row(row: Sequence[Any], score: float, retriever: str) -> Hit:
    """A hit from ``CHUNK_COLUMNS``; the score is the retriever's own."""
    return Hit(
        chunk=chunk_from_row(row),
        score=score,
        document_source=row[9],
        document_title=row[10],
        scores={retriever: score},
    )


def document_from_row(row: Sequence[Any]) -> DocumentRecord:
    doc_id, source, title, mime_type, content_hash, pipeline_hash, metadata, chunks, pages = row
    return DocumentRecord(
        doc_id, source, title, mime_type, content_hash, pipeline_hash, metadata, chunks, pages
    )


def hits(conn: Connection, keys: list[int], scores: list[float], retriever: str) -> list[Hit]:
    """Hits for chunk keys in the given order, with document source and title."""
    if not keys:
        return []
    rows = conn.execute(
        f"SELECT c.pk, {CHUNK_COLUMNS} FROM {CHUNK_JOIN} WHERE c.pk = ANY(%s)", (keys,)
    ).fetchall()
    by_key = {row[0]: row[1:] for row in rows}
    return [
        hit_from_row(by_key[key], score, retriever)
        for key, score in zip(keys, scores, strict=True)
        if key in by_key
    ]


def vector_array(value: Any) -> Matrix:
    """A loaded ``vector`` as float32: pgvector ≥ 0.4 loads a ``Vector``, older a numpy array."""
    loaded = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(loaded, dtype=np.float32)


def lexemes(terms: Sequence[str]) -> str:
    """A ``tsvector`` literal of exactly these terms, each with as many positions as it occurs
    (at most ``MAX_POSITIONS``): no parser or dictionary of PostgreSQL touches them, so
    ``x_y`` or ``café`` stay one lexeme, as ``ragserve.analysis.terms`` made them."""
    parts = []
    for term, count in Counter(_indexable(terms)).items():
        positions = ",".join(map(str, range(1, min(count, MAX_POSITIONS) + 1)))
        parts.append(f"{_quoted(term)}:{positions}")
    return " ".join(parts)


def tsquery(terms: Iterable[str]) -> str:
    """A ``tsquery`` literal: the OR of the distinct terms, each a quoted lexeme."""
    return " | ".join(_quoted(term) for term in dict.fromkeys(_indexable(terms)))


def _indexable(terms: Iterable[str]) -> Iterable[str]:
    return (t for t in terms if len(t.encode("utf-8")) <= MAX_LEXEME_BYTES)


def _quoted(term: str) -> str:
    # In tsvector and tsquery input, a quote or backslash inside quotes is escaped by a backslash.
    return "'" + term.replace("\\", "\\\\").replace("'", "\\'") + "'"
