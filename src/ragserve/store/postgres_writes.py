"""The row writes of one document change, run inside the caller's transaction (which holds the
collection's row lock): remove a document's chunks, write the document, insert its chunks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragserve.store.postgres_connections import Connection
from ragserve.store.postgres_rows import lexemes
from ragserve.store.rows import ChunkRows
from ragserve.types import DocumentRecord

_INSERT_CHUNK = (
    "INSERT INTO chunks (pk, id, collection_id, document_pk, ordinal, text, text_hash, page, "
    'start, "end", token_count, metadata, embedding, terms, term_count, lexemes) '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %b, %s, %s, %s::tsvector)"
)


@dataclass(frozen=True)
class ChunkSet:
    """Chunks removed or added by a write: their keys (ascending), and how many of them have
    at least one term and how many terms they have (the BM25 statistics)."""

    keys: list[int]
    indexed: int
    terms: int


NO_CHUNKS = ChunkSet([], 0, 0)


def remove_chunks(conn: Connection, document_pk: int) -> ChunkSet:
    """Delete a document's chunks; returns what went."""
    rows = conn.execute(
        "DELETE FROM chunks WHERE document_pk = %s RETURNING pk, term_count", (document_pk,)
    ).fetchall()
    return ChunkSet(
        sorted(pk for pk, _ in rows),
        sum(1 for _, count in rows if count > 0),
        sum(count for _, count in rows),
    )


def write_document(
    conn: Connection,
    collection_id: int,
    document: DocumentRecord,
    metadata: str,
    chunk_count: int,
    old: Sequence[Any] | None,
) -> int:
    """Insert the document row, or update the replaced one in place (keeping ``created_at``);
    returns its key."""
    values = (document.id, document.title, document.mime_type, document.content_hash,
              document.pipeline_hash, metadata, chunk_count, document.page_count)  # fmt: skip
    if old is not None:
        conn.execute(
            "UPDATE documents SET id = %s, title = %s, mime_type = %s, content_hash = %s, "
            "pipeline_hash = %s, metadata = %s::jsonb, chunk_count = %s, page_count = %s, "
            "updated_at = now() WHERE pk = %s",
            (*values, old[0]),
        )
        return int(old[0])
    row = conn.execute(
        "INSERT INTO documents (id, title, mime_type, content_hash, pipeline_hash, metadata, "
        "chunk_count, page_count, collection_id, source) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s) RETURNING pk",
        (*values, collection_id, document.source),
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row or raises
    return int(row[0])


def insert_chunks(
    conn: Connection, collection_id: int, document_pk: int, rows: ChunkRows
) -> ChunkSet:
    """Insert the chunks (one pipelined batch) under keys from ``chunk_keys``; returns them."""
    if not rows.values:
        return NO_CHUNKS
    # Taken under the collection's lock, so keys rise in commit order within the collection.
    keys = sorted(
        key
        for (key,) in conn.execute(
            "SELECT nextval('chunk_keys') FROM generate_series(1, %s)", (len(rows.values),)
        )
    )
    params = []
    indexed = total = 0
    for key, values, analysed, vector in zip(
        keys, rows.values, rows.terms, rows.vectors, strict=True
    ):
        chunk_id, ordinal, text, text_hash, page, start, end, token_count, metadata, _ = values
        split = analysed.split()
        indexed += 1 if split else 0
        total += len(split)
        params.append(
            (key, chunk_id, collection_id, document_pk, ordinal, text, text_hash, page, start,
             end, token_count, metadata, vector, analysed, len(split), lexemes(split))
        )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_CHUNK, params)
    return ChunkSet(keys, indexed, total)
