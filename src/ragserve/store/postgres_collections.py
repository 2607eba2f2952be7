"""A collection's row in the server store: looked up (and row-locked for a write), and moved to
a new version by each change, with the change-log row that lets other processes catch up."""

from __future__ import annotations

from dataclasses import dataclass

from ragserve.errors import CollectionNotFound, InputError
from ragserve.store.postgres_connections import Connection
from ragserve.store.postgres_writes import ChunkSet
from ragserve.types import CollectionInfo, Matrix

CHANGES_KEPT = 1_000
"""Change-log rows kept per collection: a process further behind reloads its BM25 index."""
COLUMNS = (
    "id, tenant, name, version, dimension, document_count, chunk_count, indexed_chunks, "
    "indexed_terms, config_name, config_version"
)


@dataclass(frozen=True)
class CollectionRow:
    id: int
    tenant: str
    name: str
    version: int
    dimension: int | None
    document_count: int
    chunk_count: int
    indexed_chunks: int
    indexed_terms: int
    config_name: str | None
    config_version: int | None

    def info(self) -> CollectionInfo:
        return CollectionInfo(
            self.tenant,
            self.name,
            self.version,
            self.document_count,
            self.chunk_count,
            self.config_name,
            self.config_version,
        )


def find_collection(
    conn: Connection, tenant: str, name: str, *, lock: bool = False
) -> CollectionRow | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM collections WHERE tenant = %s AND name = %s"
        + (" FOR NO KEY UPDATE" if lock else ""),
        (tenant, name),
    ).fetchone()
    return None if row is None else CollectionRow(*row)


def collection_row(
    conn: Connection, tenant: str, name: str, *, lock: bool = False
) -> CollectionRow:
    """The collection (row-locked for the transaction with ``lock``); raises if missing."""
    found = find_collection(conn, tenant, name, lock=lock)
    if found is None:  # another tenant's collection of that name is not there for this tenant
        raise CollectionNotFound(f"collection {name!r} not found")
    return found


def bump(
    conn: Connection,
    found: CollectionRow,
    removed: ChunkSet,
    added: ChunkSet,
    *,
    documents: int,
    dimension: int | None = None,
) -> None:
    """Record a change: a new version, the counts and statistics, and the change-log row."""
    row = conn.execute(
        "UPDATE collections SET version = nextval('versions'), chunk_count = chunk_count + %s, "
        "document_count = document_count + %s, dimension = coalesce(%s, dimension), "
        "indexed_chunks = indexed_chunks + %s, indexed_terms = indexed_terms + %s "
        "WHERE id = %s RETURNING version",
        (len(added.keys) - len(removed.keys), documents, dimension,
         added.indexed - removed.indexed, added.terms - removed.terms, found.id),
    ).fetchone()  # fmt: skip
    assert row is not None  # the row is locked by this transaction
    conn.execute(
        "INSERT INTO changes (collection_id, old_version, new_version, removed, added) "
        "VALUES (%s, %s, %s, %s::bigint[], %s::bigint[])",
        (found.id, found.version, row[0], removed.keys, added.keys),
    )
    conn.execute(
        "DELETE FROM changes WHERE collection_id = %s AND new_version <= ("
        "SELECT new_version FROM changes WHERE collection_id = %s "
        "ORDER BY new_version DESC OFFSET %s LIMIT 1)",
        (found.id, found.id, CHANGES_KEPT),
    )


def new_dimension(found: CollectionRow, vectors: Matrix, replaced_chunks: int) -> int | None:
    """The collection's vector width after the write; refuses to mix widths."""
    if vectors.shape[0] == 0:
        return None
    width = int(vectors.shape[1])
    others = found.chunk_count - replaced_chunks
    if others > 0 and found.dimension is not None and found.dimension != width:
        raise InputError(
            f"vectors have {width} dimensions but collection {found.name!r} holds "
            f"{found.dimension}-dimensional ones; re-ingest into a new collection"
        )
    return width
