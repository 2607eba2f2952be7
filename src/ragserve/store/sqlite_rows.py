"""Conversions between the embedded store's rows and domain types."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ragserve.analysis import terms
from ragserve.types import Chunk, DocumentRecord, Hit

DOCUMENT_COLUMNS = (
    "id, source, title, mime_type, content_hash, pipeline_hash, metadata, chunk_count, page_count"
)
CHUNK_SELECT = (
    'SELECT c.pk, c.id, d.id, c.ordinal, c.text, c.page, c.start, c."end", c.token_count, '
    "c.metadata, d.source, d.title FROM chunks c JOIN documents d ON d.pk = c.document_pk"
)
"""Selects what ``chunk_from_row`` reads, plus the document's source and title (10, 11)."""


def document_match(match: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition (``AND ...``, empty for None) keeping documents whose source or title
    contains ``match`` ignoring case, and its parameters. Both sides go through
    ``unicode_lower`` (Python's ``str.lower``, registered on every connection), as SQLite's
    ``lower()`` and ``LIKE`` fold ASCII only; ``instr`` has no wildcards, so ``%``, ``_`` and
    ``\\`` match themselves."""
    if match is None:
        return "", ()
    condition = (
        " AND (instr(unicode_lower(source), unicode_lower(?)) > 0"
        " OR instr(unicode_lower(coalesce(title, '')), unicode_lower(?)) > 0)"
    )
    return condition, (match, match)


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
