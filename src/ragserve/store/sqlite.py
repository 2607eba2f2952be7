"""The embedded store: one SQLite file (stdlib ``sqlite3``, WAL) holding every table, an FTS5
full-text index per collection and the vectors as float32 BLOBs, searched in memory.

Each document is written in one ``BEGIN IMMEDIATE`` transaction, so a crash leaves it wholly
present or wholly absent. Dense search runs on a numpy matrix per collection, keyword search on a
numpy BM25 index per collection built from the FTS5 table; both follow the collection's version,
so every process sharing the file sees every other's writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ragserve.analysis import terms
from ragserve.errors import (
    CollectionNotFound,
    ConfigError,
    Conflict,
    DocumentNotFound,
    InputError,
    InvalidQuery,
    NotFoundError,
)
from ragserve.retrieve.filters import Filter
from ragserve.store.accounts import AccountStore
from ragserve.store.derived import DerivedCache
from ragserve.store.experiments import ExperimentStore
from ragserve.store.jobs import JobStore
from ragserve.store.lexical import LexicalIndex, TermsDelta
from ragserve.store.rows import INTERNAL_MARK, ChunkRows, chunk_rows, dumps, retired_name
from ragserve.store.schema import create_fts_table, fts_table, migrate, utc_now
from ragserve.store.sqlite_accounts import SqliteAccountStore
from ragserve.store.sqlite_connections import ConnectionPool, database_path
from ragserve.store.sqlite_experiments import SqliteExperimentStore
from ragserve.store.sqlite_filters import allowed_positions
from ragserve.store.sqlite_jobs import SqliteJobStore
from ragserve.store.sqlite_lexical import fts5_search, lexical_changes_since, load_lexicon
from ragserve.store.sqlite_matrix import changes_since, load_matrix
from ragserve.store.sqlite_rows import (
    CHUNK_SELECT,
    DOCUMENT_COLUMNS,
    chunk_from_row,
    document_from_row,
    document_match,
    hits,
)
from ragserve.store.vectors import Ids, VectorCache, ids
from ragserve.types import Chunk, CollectionInfo, DocumentRecord, Hit, IngestStatus, Matrix

CHANGES_KEPT = 10_000
"""Change-log rows kept (all collections): a process further behind reloads its matrix."""

_COLLECTION_COLUMNS = (
    "id, tenant, name, version, dimension, document_count, chunk_count, config_name, config_version"
)

NO_IDS: Ids = np.zeros(0, dtype=np.int64)

KeywordEngine = Literal["memory", "fts5"]
"""``memory``: Lucene BM25 on an in-memory index per collection (default); ``fts5``: FTS5's
``bm25()`` in SQL (slower when many chunks match; its IDF ignores terms in over half the chunks)."""


@dataclass(frozen=True)
class _Collection:
    id: int
    tenant: str
    name: str
    version: int
    dimension: int | None
    document_count: int
    chunk_count: int
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


class SqliteStore:
    """The ``Store`` on one SQLite file; safe to share between threads, and between processes
    through the file."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 30_000,
        keyword_engine: KeywordEngine = "memory",
    ) -> None:
        if keyword_engine not in get_args(KeywordEngine):
            raise ConfigError(
                f"unknown keyword engine {keyword_engine!r}; available: "
                + ", ".join(get_args(KeywordEngine))
            )
        self.path = str(path)
        self.keyword_engine = keyword_engine
        self._pool = ConnectionPool(self.path, busy_timeout_ms=busy_timeout_ms)
        self._vectors = VectorCache()
        self._lexicon = DerivedCache[LexicalIndex, TermsDelta]()
        try:
            with self._pool.connection() as conn:
                conn.execute("PRAGMA journal_mode = WAL")
                migrate(conn)
        except BaseException:
            self._pool.close()
            raise
        self.accounts: AccountStore = SqliteAccountStore(self._pool)
        self.jobs: JobStore = SqliteJobStore(self._pool)
        self.experiments: ExperimentStore = SqliteExperimentStore(self._pool)

    @classmethod
    def from_url(cls, url: str, *, busy_timeout_ms: int = 30_000) -> SqliteStore:
        """Open ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``;
        ``?keyword_engine=fts5`` selects the keyword engine."""
        options = parse_qs(urlsplit(url).query)
        engine = options.get("keyword_engine", ["memory"])[-1]
        return cls(
            database_path(url),
            busy_timeout_ms=busy_timeout_ms,
            keyword_engine=cast(KeywordEngine, engine),  # __init__ refuses unknown names
        )

    def ping(self) -> None:
        self.accounts.ping()

    def close(self) -> None:
        self._pool.close()
        self._vectors.clear()
        self._lexicon.clear()

    # -- collections -------------------------------------------------------------------------

    def ensure_collection(self, tenant: str, collection: str) -> CollectionInfo:
        with self._pool.transaction() as conn:
            found = _find_collection(conn, tenant, collection)
        if found is not None:
            return found.info()
        with self._pool.transaction(write=True) as conn:
            found = _find_collection(conn, tenant, collection)
            if found is None:
                row = conn.execute(
                    "INSERT INTO collections (tenant, name, version, created_at) "
                    "VALUES (?, ?, ?, ?) RETURNING id",
                    (tenant, collection, _next_version(conn), utc_now()),
                ).fetchone()
                create_fts_table(conn, row[0])
                found = _collection(conn, tenant, collection)
        return found.info()

    def get_collection(self, tenant: str, collection: str) -> CollectionInfo:
        with self._pool.transaction() as conn:
            return _collection(conn, tenant, collection).info()

    def list_collections(self, tenant: str) -> list[CollectionInfo]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLLECTION_COLUMNS} FROM collections "
                "WHERE tenant = ? AND instr(name, ?) = 0 ORDER BY name",
                (tenant, INTERNAL_MARK),
            ).fetchall()
        return [_Collection(*row).info() for row in rows]

    def all_collections(self) -> list[CollectionInfo]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLLECTION_COLUMNS} FROM collections ORDER BY chunk_count DESC"
            ).fetchall()
        return [_Collection(*row).info() for row in rows]

    def delete_collection(self, tenant: str, collection: str) -> None:
        with self._pool.transaction(write=True) as conn:
            found = _collection(conn, tenant, collection)
            conn.execute(f"DROP TABLE IF EXISTS {fts_table(found.id)}")
            conn.execute("DELETE FROM chunks WHERE collection_id = ?", (found.id,))
            conn.execute("DELETE FROM documents WHERE collection_id = ?", (found.id,))
            conn.execute("DELETE FROM collections WHERE id = ?", (found.id,))
        self._vectors.discard(found.id)
        self._lexicon.discard(found.id)

    def set_collection_config(
        self, tenant: str, collection: str, config: tuple[str, int] | None
    ) -> CollectionInfo:
        with self._pool.transaction(write=True) as conn:
            found = _collection(conn, tenant, collection)
            name, version = config if config is not None else (None, None)
            conn.execute(
                "UPDATE collections SET config_name = ?, config_version = ? WHERE id = ?",
                (name, version, found.id),
            )
            _bump(conn, found, 0, 0, removed=NO_IDS, added=NO_IDS)
            return _collection(conn, tenant, collection).info()

    def touch_collection(self, tenant: str, collection: str) -> CollectionInfo:
        with self._pool.transaction(write=True) as conn:
            _bump(conn, _collection(conn, tenant, collection), 0, 0, removed=NO_IDS, added=NO_IDS)
            return _collection(conn, tenant, collection).info()

    def swap_collection(
        self,
        tenant: str,
        live: str,
        shadow: str,
        *,
        expected_version: int,
        config: tuple[str, int] | None,
    ) -> str:
        with self._pool.transaction(write=True) as conn:
            old = _collection(conn, tenant, live)
            if old.version != expected_version:
                raise Conflict(
                    f"collection {live!r} changed during the swap "
                    f"(version {old.version}, expected {expected_version})"
                )
            new = _collection(conn, tenant, shadow)
            retired = retired_name(live, old.id)
            name, version = config if config is not None else (None, None)
            conn.execute("UPDATE collections SET name = ? WHERE id = ?", (retired, old.id))
            conn.execute(
                "UPDATE collections SET name = ?, config_name = ?, config_version = ?, "
                "created_at = (SELECT created_at FROM collections WHERE id = ?) WHERE id = ?",
                (live, name, version, old.id, new.id),
            )
            _bump(conn, _collection(conn, tenant, live), 0, 0, removed=NO_IDS, added=NO_IDS)
        return retired

    # -- documents ---------------------------------------------------------------------------

    def find_document(self, tenant: str, collection: str, source: str) -> DocumentRecord | None:
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            row = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ? AND source = ?",
                (found.id, source),
            ).fetchone()
        return None if row is None else document_from_row(row)

    def get_document(self, tenant: str, collection: str, document_id: str) -> DocumentRecord:
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            row = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ? AND id = ?",
                (found.id, document_id),
            ).fetchone()
        if row is None:
            raise DocumentNotFound(f"no document {document_id!r} in collection {collection!r}")
        return document_from_row(row)

    def list_documents(
        self,
        tenant: str,
        collection: str,
        *,
        limit: int = 100,
        offset: int = 0,
        match: str | None = None,
    ) -> list[DocumentRecord]:
        """A page of the collection's documents, ordered by source (see ``document_match``)."""
        if limit < 0 or offset < 0:
            raise InvalidQuery("limit and offset must not be negative")
        condition, values = document_match(match)
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            rows = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?{condition} "
                "ORDER BY source LIMIT ? OFFSET ?",
                (found.id, *values, limit, offset),
            ).fetchall()
        return [document_from_row(row) for row in rows]

    def count_documents(self, tenant: str, collection: str, *, match: str | None = None) -> int:
        condition, values = document_match(match)
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            if match is None:
                return found.document_count
            row = conn.execute(
                f"SELECT count(*) FROM documents WHERE collection_id = ?{condition}",
                (found.id, *values),
            ).fetchone()
        return int(row[0])

    def existing_vectors(self, tenant: str, collection: str, document_id: str) -> dict[str, Matrix]:
        """Read-only 1-D rows keyed by chunk-text sha256; empty for an unknown document."""
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            rows = conn.execute(
                "SELECT c.text_hash, c.vector FROM chunks c JOIN documents d "
                "ON d.pk = c.document_pk WHERE d.collection_id = ? AND d.id = ?",
                (found.id, document_id),
            ).fetchall()
        return {text_hash: np.frombuffer(blob, dtype=np.float32) for text_hash, blob in rows}

    def put_document(
        self,
        tenant: str,
        collection: str,
        document: DocumentRecord,
        chunks: Sequence[Chunk],
        vectors: Matrix,
    ) -> IngestStatus:
        rows = chunk_rows(document, chunks, vectors)
        metadata = dumps(document.metadata, f"{document.source}: document metadata")
        with self._pool.transaction(write=True) as conn:
            found = _collection(conn, tenant, collection)
            old = conn.execute(
                "SELECT pk, content_hash, pipeline_hash, chunk_count FROM documents "
                "WHERE collection_id = ? AND source = ?",
                (found.id, document.source),
            ).fetchone()
            same = (document.content_hash, document.pipeline_hash)
            if old is not None and (old[1], old[2]) == same:
                return "unchanged"
            dimension = _dimension(found, rows.vectors, 0 if old is None else old[3])
            removed = ids([]) if old is None else _remove_chunks(conn, found.id, old[0])
            try:
                doc_pk = _write_document(conn, found.id, document, metadata, len(chunks), old)
                added = _insert_chunks(conn, found.id, doc_pk, rows)
            except sqlite3.IntegrityError as exc:
                raise InputError(
                    f"document {document.id!r} ({document.source!r}) reuses a document or chunk "
                    f"id already taken by another document in collection {collection!r}"
                ) from exc
            counts = (len(chunks) - removed.size, 0 if old else 1)
            _bump(conn, found, *counts, removed=removed, added=added, dimension=dimension)
        return "added" if old is None else "replaced"

    def delete_document(self, tenant: str, collection: str, document_id: str) -> None:
        with self._pool.transaction(write=True) as conn:
            found = _collection(conn, tenant, collection)
            row = conn.execute(
                "SELECT pk FROM documents WHERE collection_id = ? AND id = ?",
                (found.id, document_id),
            ).fetchone()
            if row is None:
                raise DocumentNotFound(
                    f"document {document_id!r} not found in collection {collection!r}"
                )
            removed = _remove_chunks(conn, found.id, row[0])
            conn.execute("DELETE FROM documents WHERE pk = ?", (row[0],))
            _bump(conn, found, -removed.size, -1, removed=removed, added=ids([]))

    # -- search ------------------------------------------------------------------------------

    def dense_search(
        self,
        tenant: str,
        collection: str,
        vector: Matrix,
        *,
        limit: int,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """Exact dot-product top-``limit`` over the collection's in-memory matrix."""
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(-1))
        # One read snapshot: the version, the matrix (if it must be reloaded), the filter and
        # the returned rows all describe the same state of the collection.
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            if limit <= 0 or found.chunk_count == 0 or found.dimension is None:
                return []
            if query.size != found.dimension:
                raise InvalidQuery(
                    f"query vector has {query.size} dimensions; collection {collection!r} holds "
                    f"{found.dimension}-dimensional vectors (embedded with another model?)"
                )
            matrix = self._vectors.get(
                found.id,
                found.version,
                load=lambda: load_matrix(conn, found.id, found.version, query.size),
                catch_up=lambda old: changes_since(conn, found.id, found.version, query.size, old),
            )
            positions = None
            if filters:
                positions = allowed_positions(conn, found.id, matrix, filters)
                if positions.size == 0:
                    return []
            keys, scores = matrix.top(query, limit, positions)
            return hits(conn, keys.tolist(), scores.tolist(), "dense")

    def keyword_search(
        self,
        tenant: str,
        collection: str,
        query: str,
        *,
        limit: int,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """BM25 over the query's analysed terms (see ``ragserve.store.lexical``), or FTS5's
        ``bm25()`` negated with the ``fts5`` engine."""
        wanted = terms(query)
        # One read snapshot, as in dense_search.
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            if self.keyword_engine == "fts5":
                return fts5_search(conn, found.id, query, limit, filters)
            if not wanted or limit <= 0 or found.chunk_count == 0:
                return []
            index = self._lexicon.get(
                found.id,
                found.version,
                load=lambda: load_lexicon(conn, found.id, found.version),
                catch_up=lambda old: lexical_changes_since(conn, found.id, found.version, old),
            )
            positions = None
            if filters:
                positions = allowed_positions(conn, found.id, index, filters)
                if positions.size == 0:
                    return []
            keys, scores = index.top(wanted, limit, positions)
            return hits(conn, keys.tolist(), scores.tolist(), "bm25")

    # -- chunks ------------------------------------------------------------------------------

    def get_chunks(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            rows = conn.execute(
                f"{CHUNK_SELECT} WHERE c.collection_id = ? "
                "AND c.id IN (SELECT value FROM json_each(?))",
                (found.id, json.dumps(list(chunk_ids))),
            ).fetchall()
        by_id = {row[1]: chunk_from_row(row) for row in rows}
        return [by_id[i] for i in chunk_ids if i in by_id]

    def document_chunks(
        self, tenant: str, collection: str, document_id: str, *, page: int | None = None
    ) -> list[Chunk]:
        page_condition, pages = ("", ()) if page is None else (" AND c.page = ?", (page,))
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            document = conn.execute(
                "SELECT pk FROM documents WHERE collection_id = ? AND id = ?",
                (found.id, document_id),
            ).fetchone()
            if document is None:
                raise DocumentNotFound(f"no document {document_id!r} in collection {collection!r}")
            rows = conn.execute(
                f"{CHUNK_SELECT} WHERE c.document_pk = ?{page_condition} ORDER BY c.ordinal",
                (document[0], *pages),
            ).fetchall()
        return [chunk_from_row(row) for row in rows]

    def chunk_vectors(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> Matrix:
        """One row per id, in order; raises ``NotFoundError`` naming ids that are not stored."""
        with self._pool.transaction() as conn:
            found = _collection(conn, tenant, collection)
            rows = conn.execute(
                "SELECT id, vector FROM chunks WHERE collection_id = ? "
                "AND id IN (SELECT value FROM json_each(?))",
                (found.id, json.dumps(list(chunk_ids))),
            ).fetchall()
        blobs: dict[str, bytes] = dict(rows)
        missing = [i for i in chunk_ids if i not in blobs]
        if missing:
            raise NotFoundError(f"chunks not found in collection {collection!r}: {missing[:5]}")
        buffer = b"".join(blobs[i] for i in chunk_ids)
        return np.frombuffer(buffer, dtype=np.float32).reshape(len(chunk_ids), found.dimension or 0)


def _find_collection(conn: sqlite3.Connection, tenant: str, name: str) -> _Collection | None:
    row = conn.execute(
        f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE tenant = ? AND name = ?",
        (tenant, name),
    ).fetchone()
    return None if row is None else _Collection(*row)


def _collection(conn: sqlite3.Connection, tenant: str, name: str) -> _Collection:
    found = _find_collection(conn, tenant, name)
    if found is None:  # another tenant's collection of that name is not there for this tenant
        raise CollectionNotFound(f"collection {name!r} not found")
    return found


def _next_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'version' RETURNING value"
    ).fetchone()
    return int(row[0])


def _bump(
    conn: sqlite3.Connection,
    found: _Collection,
    chunks: int,
    documents: int,
    *,
    removed: Ids,
    added: Ids,
    dimension: int | None = None,
) -> int:
    """Record a change: a new version, the counts (and vector width), and the change log row."""
    version = _next_version(conn)
    conn.execute(
        "UPDATE collections SET version = ?, chunk_count = chunk_count + ?, "
        "document_count = document_count + ?, dimension = coalesce(?, dimension) WHERE id = ?",
        (version, chunks, documents, dimension, found.id),
    )
    row = conn.execute(
        "INSERT INTO changes (collection_id, old_version, new_version, removed, added) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (
            found.id,
            found.version,
            version,
            removed.astype("<i8").tobytes(),
            added.astype("<i8").tobytes(),
        ),
    ).fetchone()
    conn.execute("DELETE FROM changes WHERE id <= ?", (row[0] - CHANGES_KEPT,))
    return version


def _dimension(found: _Collection, vectors: Matrix, replaced_chunks: int) -> int | None:
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


def _write_document(
    conn: sqlite3.Connection,
    collection_id: int,
    document: DocumentRecord,
    metadata: str,
    chunk_count: int,
    old: Sequence[Any] | None,
) -> int:
    """Insert the document row, or update the replaced one in place (keeping ``created_at``)."""
    now = utc_now()
    values = (document.id, document.title, document.mime_type, document.content_hash,
              document.pipeline_hash, metadata, chunk_count, document.page_count, now)  # fmt: skip
    if old is not None:
        conn.execute(
            "UPDATE documents SET id = ?, title = ?, mime_type = ?, content_hash = ?, "
            "pipeline_hash = ?, metadata = ?, chunk_count = ?, page_count = ?, updated_at = ? "
            "WHERE pk = ?",
            (*values, old[0]),
        )
        return int(old[0])
    row = conn.execute(
        "INSERT INTO documents (id, title, mime_type, content_hash, pipeline_hash, metadata, "
        "chunk_count, page_count, updated_at, created_at, collection_id, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
        (*values, now, collection_id, document.source),
    ).fetchone()
    return int(row[0])


def _remove_chunks(conn: sqlite3.Connection, collection_id: int, doc_pk: int) -> Ids:
    """Delete a document's chunks and their FTS rows; returns the removed chunk keys."""
    keys = [k for (k,) in conn.execute("SELECT pk FROM chunks WHERE document_pk = ?", (doc_pk,))]
    # One rowid lookup per row: an IN (subquery) on an FTS5 table would scan it.
    conn.executemany(
        f"DELETE FROM {fts_table(collection_id)} WHERE rowid = ?", [(k,) for k in keys]
    )
    conn.execute("DELETE FROM chunks WHERE document_pk = ?", (doc_pk,))
    return ids(keys)


def _insert_chunks(
    conn: sqlite3.Connection, collection_id: int, doc_pk: int, rows: ChunkRows
) -> Ids:
    # Keys come from a counter, under the write lock: never reused, shared with the FTS rows.
    last = conn.execute(
        "UPDATE counters SET value = value + ? WHERE name = 'chunk' RETURNING value",
        (len(rows.values),),
    ).fetchone()[0]
    keys = list(range(last - len(rows.values) + 1, last + 1))
    conn.executemany(
        "INSERT INTO chunks (pk, collection_id, document_pk, id, ordinal, text, text_hash, "
        'page, start, "end", token_count, metadata, vector) '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(k, collection_id, doc_pk, *row) for k, row in zip(keys, rows.values, strict=True)],
    )
    conn.executemany(
        f"INSERT INTO {fts_table(collection_id)} (rowid, terms) VALUES (?, ?)",
        zip(keys, rows.terms, strict=True),
    )
    return ids(keys)
