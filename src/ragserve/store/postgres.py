"""The server store: PostgreSQL with pgvector, for several API and worker processes on many
machines sharing one database.

Layout (``postgres_schema``): one ``chunks`` table for every tenant and collection, its
``embedding`` a ``vector`` of no declared width. A collection's width is fixed by its first
document (and may change only once it is empty, as in the embedded store); each width that
occurs gets one *partial expression* HNSW index, ``(embedding::vector(d)) vector_ip_ops WHERE
vector_dims(embedding) = d``, created with the first collection of that width. Versus a table
per width this keeps one set of foreign keys, cascades, filters and change log; versus an index
per collection it keeps the number of indexes at the number of embedders, however many tenants
create collections. Vectors are normalised, so the inner product is the cosine.

Dense search is exact for small candidate sets and HNSW beyond (``postgres_search``). Keyword
search has two engines (``?keyword_engine=``): ``memory`` (default), the in-memory Lucene BM25
``LexicalIndex`` of the embedded store, loaded from ``chunks.terms`` and kept current from the
change log; ``tsvector``, ``@@`` on a GIN index with BM25 computed in SQL (no index held in
memory; slower when many chunks match; term frequencies capped at 256).

Each document is written in one transaction holding its collection's row lock (``FOR NO KEY
UPDATE``): writers of one collection serialise, so identical concurrent puts give one
``added`` and then ``unchanged``, and chunk keys rise in commit order within a collection.
Reads are ``REPEATABLE READ`` snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, get_args

import numpy as np
import psycopg
from pgvector.psycopg.vector import register_vector_info
from psycopg import errors
from psycopg.types import TypeInfo

from ragserve.analysis import terms
from ragserve.errors import (
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
from ragserve.store.postgres_accounts import PostgresAccountStore
from ragserve.store.postgres_collections import (
    COLUMNS,
    CollectionRow,
    bump,
    collection_row,
    find_collection,
    new_dimension,
)
from ragserve.store.postgres_connections import (
    PostgresPool,
    backend_error,
    describe,
    split_url,
)
from ragserve.store.postgres_experiments import PostgresExperimentStore
from ragserve.store.postgres_jobs import PostgresJobStore
from ragserve.store.postgres_lexical import allowed_positions, lexical_changes_since, load_lexicon
from ragserve.store.postgres_rows import (
    CHUNK_COLUMNS,
    CHUNK_JOIN,
    DOCUMENT_COLUMNS,
    chunk_from_row,
    document_from_row,
    document_match,
    hits,
    vector_array,
)
from ragserve.store.postgres_schema import ensure_hnsw_index, migrate
from ragserve.store.postgres_search import as_query_vector, bm25_hits, dense_hits
from ragserve.store.postgres_writes import (
    NO_CHUNKS,
    insert_chunks,
    remove_chunks,
    write_document,
)
from ragserve.store.rows import INTERNAL_MARK, chunk_rows, dumps, retired_name
from ragserve.types import Chunk, CollectionInfo, DocumentRecord, Hit, IngestStatus, Matrix

KeywordEngine = Literal["memory", "tsvector"]
"""``memory``: Lucene BM25 on an in-memory index per collection (default); ``tsvector``: BM25
in SQL over the GIN-indexed ``tsvector`` column."""

EXACT_MAX = 5_000
"""Dense search scans at most this many vectors exactly; more go through the HNSW index."""
MIN_PGVECTOR = (0, 8)
"""Iterative index scans, which filtered HNSW search relies on, came with pgvector 0.8."""
_OPTIONS = ("keyword_engine", "pool_size", "exact_max")


class PostgresStore:
    """The ``Store`` on a PostgreSQL database with pgvector ≥ 0.8; thread-safe, and any number
    of processes may share the database."""

    def __init__(
        self,
        conninfo: str,
        *,
        keyword_engine: KeywordEngine = "memory",
        lock_timeout_ms: int = 30_000,
        pool_size: int = 10,
        exact_max: int = EXACT_MAX,
    ) -> None:
        if keyword_engine not in get_args(KeywordEngine):
            raise ConfigError(
                f"unknown keyword engine {keyword_engine!r}; available: "
                + ", ".join(get_args(KeywordEngine))
            )
        if pool_size < 1 or exact_max < 0:
            raise ConfigError("pool_size must be at least 1 and exact_max not negative")
        self.keyword_engine = keyword_engine
        self.exact_max = exact_max
        vector = _prepare(conninfo)
        self._pool = PostgresPool(
            conninfo,
            size=pool_size,
            lock_timeout_ms=lock_timeout_ms,
            configure=lambda conn: register_vector_info(conn, vector),
        )
        self._lexicon = DerivedCache[LexicalIndex, TermsDelta]()
        self._indexed: set[int] = set()
        self.accounts: AccountStore = PostgresAccountStore(self._pool)
        self.jobs: JobStore = PostgresJobStore(self._pool)
        self.experiments: ExperimentStore = PostgresExperimentStore(self._pool)

    @classmethod
    def from_url(cls, url: str, *, busy_timeout_ms: int = 30_000) -> PostgresStore:
        """Open ``postgresql://user:password@host:port/database`` (``postgres://`` too);
        ``?keyword_engine=tsvector``, ``?pool_size=`` and ``?exact_max=`` are the store's own
        options, every other parameter goes to libpq. ``busy_timeout_ms`` bounds lock waits."""
        conninfo, options = split_url(url, _OPTIONS)
        try:
            pool_size = int(options.get("pool_size", "10"))
            exact_max = int(options.get("exact_max", str(EXACT_MAX)))
        except ValueError as exc:
            raise ConfigError(f"invalid store option in {describe(conninfo)}: {exc}") from exc
        return cls(
            conninfo,
            keyword_engine=cast(KeywordEngine, options.get("keyword_engine", "memory")),
            lock_timeout_ms=busy_timeout_ms,
            pool_size=pool_size,
            exact_max=exact_max,
        )

    def ping(self) -> None:
        self._pool.ping()

    def close(self) -> None:
        self._pool.close()
        self._lexicon.clear()

    # -- collections -------------------------------------------------------------------------

    def ensure_collection(self, tenant: str, collection: str) -> CollectionInfo:
        with self._pool.transaction() as conn:
            found = find_collection(conn, tenant, collection)
        if found is not None:
            return found.info()
        with self._pool.transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO collections (tenant, name, version) "
                "VALUES (%s, %s, nextval('versions')) ON CONFLICT (tenant, name) DO NOTHING",
                (tenant, collection),
            )
            return collection_row(conn, tenant, collection).info()

    def get_collection(self, tenant: str, collection: str) -> CollectionInfo:
        with self._pool.transaction() as conn:
            return collection_row(conn, tenant, collection).info()

    def list_collections(self, tenant: str) -> list[CollectionInfo]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM collections WHERE tenant = %s AND strpos(name, %s) = 0 "
                'ORDER BY name COLLATE "C"',
                (tenant, INTERNAL_MARK),
            ).fetchall()
        return [CollectionRow(*row).info() for row in rows]

    def all_collections(self) -> list[CollectionInfo]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM collections ORDER BY chunk_count DESC, id"
            ).fetchall()
        return [CollectionRow(*row).info() for row in rows]

    def delete_collection(self, tenant: str, collection: str) -> None:
        with self._pool.transaction(write=True) as conn:
            found = collection_row(conn, tenant, collection, lock=True)
            conn.execute("DELETE FROM collections WHERE id = %s", (found.id,))  # cascades
        self._lexicon.discard(found.id)

    def set_collection_config(
        self, tenant: str, collection: str, config: tuple[str, int] | None
    ) -> CollectionInfo:
        with self._pool.transaction(write=True) as conn:
            found = collection_row(conn, tenant, collection, lock=True)
            name, version = config if config is not None else (None, None)
            conn.execute(
                "UPDATE collections SET config_name = %s, config_version = %s WHERE id = %s",
                (name, version, found.id),
            )
            bump(conn, found, NO_CHUNKS, NO_CHUNKS, documents=0)
            return collection_row(conn, tenant, collection).info()

    def touch_collection(self, tenant: str, collection: str) -> CollectionInfo:
        with self._pool.transaction(write=True) as conn:
            found = collection_row(conn, tenant, collection, lock=True)
            bump(conn, found, NO_CHUNKS, NO_CHUNKS, documents=0)
            return collection_row(conn, tenant, collection).info()

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
            old = collection_row(conn, tenant, live, lock=True)
            if old.version != expected_version:
                raise Conflict(
                    f"collection {live!r} changed during the swap "
                    f"(version {old.version}, expected {expected_version})"
                )
            new = collection_row(conn, tenant, shadow, lock=True)
            retired = retired_name(live, old.id)
            name, version = config if config is not None else (None, None)
            conn.execute("UPDATE collections SET name = %s WHERE id = %s", (retired, old.id))
            conn.execute(
                "UPDATE collections SET name = %s, config_name = %s, config_version = %s, "
                "created_at = (SELECT created_at FROM collections WHERE id = %s) WHERE id = %s",
                (live, name, version, old.id, new.id),
            )
            bump(conn, collection_row(conn, tenant, live), NO_CHUNKS, NO_CHUNKS, documents=0)
        return retired

    # -- documents ---------------------------------------------------------------------------

    def find_document(self, tenant: str, collection: str, source: str) -> DocumentRecord | None:
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            row = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents "
                "WHERE collection_id = %s AND source = %s",
                (found.id, source),
            ).fetchone()
        return None if row is None else document_from_row(row)

    def get_document(self, tenant: str, collection: str, document_id: str) -> DocumentRecord:
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            row = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = %s AND id = %s",
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
        """A page of the collection's documents, ordered by source (code point order; see
        ``document_match``)."""
        if limit < 0 or offset < 0:
            raise InvalidQuery("limit and offset must not be negative")
        condition, values = document_match(match)
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            rows = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection_id = %s{condition} "
                'ORDER BY source COLLATE "C" LIMIT %s OFFSET %s',
                (found.id, *values, limit, offset),
            ).fetchall()
        return [document_from_row(row) for row in rows]

    def count_documents(self, tenant: str, collection: str, *, match: str | None = None) -> int:
        condition, values = document_match(match)
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            if match is None:
                return found.document_count
            row = conn.execute(
                f"SELECT count(*) FROM documents WHERE collection_id = %s{condition}",
                (found.id, *values),
            ).fetchone()
        return int(row[0]) if row else 0

    def existing_vectors(self, tenant: str, collection: str, document_id: str) -> dict[str, Matrix]:
        """1-D float32 rows keyed by chunk-text sha256; empty for an unknown document."""
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            rows = conn.cursor(binary=True).execute(
                "SELECT c.text_hash, c.embedding FROM chunks c JOIN documents d "
                "ON d.pk = c.document_pk WHERE d.collection_id = %s AND d.id = %s",
                (found.id, document_id),
            )
            return {text_hash: vector_array(vector) for text_hash, vector in rows}

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
        if chunks:
            self._ensure_index(int(rows.vectors.shape[1]))
        with self._pool.transaction(write=True) as conn:
            found = collection_row(conn, tenant, collection, lock=True)
            old = conn.execute(
                "SELECT pk, content_hash, pipeline_hash, chunk_count FROM documents "
                "WHERE collection_id = %s AND source = %s",
                (found.id, document.source),
            ).fetchone()
            if old is not None and (old[1], old[2]) == (document.content_hash,
                                                        document.pipeline_hash):  # fmt: skip
                return "unchanged"
            dimension = new_dimension(found, rows.vectors, 0 if old is None else old[3])
            try:
                removed = NO_CHUNKS if old is None else remove_chunks(conn, old[0])
                doc_pk = write_document(conn, found.id, document, metadata, len(chunks), old)
                added = insert_chunks(conn, found.id, doc_pk, rows)
            except (errors.UniqueViolation, psycopg.DataError, errors.ProgramLimitExceeded) as exc:
                raise _input_error(exc, document, collection) from exc
            bump(conn, found, removed, added, documents=0 if old else 1, dimension=dimension)
        return "added" if old is None else "replaced"

    def delete_document(self, tenant: str, collection: str, document_id: str) -> None:
        with self._pool.transaction(write=True) as conn:
            found = collection_row(conn, tenant, collection, lock=True)
            row = conn.execute(
                "SELECT pk FROM documents WHERE collection_id = %s AND id = %s",
                (found.id, document_id),
            ).fetchone()
            if row is None:
                raise DocumentNotFound(
                    f"document {document_id!r} not found in collection {collection!r}"
                )
            removed = remove_chunks(conn, row[0])
            conn.execute("DELETE FROM documents WHERE pk = %s", (row[0],))
            bump(conn, found, removed, NO_CHUNKS, documents=-1)

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
        """Top ``limit`` by dot product: exact for small collections, HNSW for large ones."""
        query = as_query_vector(vector)
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            if limit <= 0 or found.chunk_count == 0 or found.dimension is None:
                return []
            if query.size != found.dimension:
                raise InvalidQuery(
                    f"query vector has {query.size} dimensions; collection {collection!r} holds "
                    f"{found.dimension}-dimensional vectors (embedded with another model?)"
                )
            return dense_hits(
                conn, found.id, found.dimension, query, limit, filters,
                candidates=found.chunk_count, exact_max=self.exact_max,
            )  # fmt: skip

    def keyword_search(
        self,
        tenant: str,
        collection: str,
        query: str,
        *,
        limit: int,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """BM25 over the query's analysed terms (see ``ragserve.store.lexical``)."""
        wanted = terms(query)
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            if not wanted or limit <= 0 or found.chunk_count == 0:
                return []
            if self.keyword_engine == "tsvector":
                return bm25_hits(
                    conn, found.id, wanted, limit, filters,
                    indexed_chunks=found.indexed_chunks, indexed_terms=found.indexed_terms,
                )  # fmt: skip
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
            found = collection_row(conn, tenant, collection)
            rows = conn.execute(
                f"SELECT {CHUNK_COLUMNS} FROM {CHUNK_JOIN} "
                "WHERE c.collection_id = %s AND c.id = ANY(%s)",
                (found.id, list(chunk_ids)),
            ).fetchall()
        by_id = {row[0]: chunk_from_row(row) for row in rows}
        return [by_id[i] for i in chunk_ids if i in by_id]

    def document_chunks(
        self, tenant: str, collection: str, document_id: str, *, page: int | None = None
    ) -> list[Chunk]:
        page_condition, pages = ("", ()) if page is None else (" AND c.page = %s", (page,))
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            document = conn.execute(
                "SELECT pk FROM documents WHERE collection_id = %s AND id = %s",
                (found.id, document_id),
            ).fetchone()
            if document is None:
                raise DocumentNotFound(f"no document {document_id!r} in collection {collection!r}")
            rows = conn.execute(
                f"SELECT {CHUNK_COLUMNS} FROM {CHUNK_JOIN} "
                f"WHERE c.document_pk = %s{page_condition} ORDER BY c.ordinal",
                (document[0], *pages),
            ).fetchall()
        return [chunk_from_row(row) for row in rows]

    def chunk_vectors(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> Matrix:
        """One row per id, in order; raises ``NotFoundError`` naming ids that are not stored."""
        with self._pool.transaction() as conn:
            found = collection_row(conn, tenant, collection)
            rows = conn.cursor(binary=True).execute(
                "SELECT id, embedding FROM chunks WHERE collection_id = %s AND id = ANY(%s)",
                (found.id, list(chunk_ids)),
            )
            stored = {chunk_id: vector_array(vector) for chunk_id, vector in rows}
        missing = [i for i in chunk_ids if i not in stored]
        if missing:
            raise NotFoundError(f"chunks not found in collection {collection!r}: {missing[:5]}")
        if not chunk_ids:
            return np.zeros((0, found.dimension or 0), dtype=np.float32)
        return np.stack([stored[i] for i in chunk_ids]).astype(np.float32, copy=False)

    def _ensure_index(self, dimension: int) -> None:
        """The HNSW index for this width, created once per database (checked once per process)."""
        if dimension in self._indexed:
            return
        with self._pool.connection() as conn:
            ensure_hnsw_index(conn, dimension)
        self._indexed.add(dimension)


def _prepare(conninfo: str) -> TypeInfo:
    """Migrate the database and return the ``vector`` type, checking pgvector's version."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            migrate(conn)
            info = TypeInfo.fetch(conn, "vector")
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
    except (errors.UndefinedFile, errors.FeatureNotSupported, errors.InsufficientPrivilege) as exc:
        # CREATE EXTENSION vector: pgvector missing on the server, or not ours to install.
        raise ConfigError(
            f"{describe(conninfo)}: {str(exc).strip()}; the store needs pgvector 0.8 or newer "
            "on the server, and a superuser to run CREATE EXTENSION vector once in the database"
        ) from exc
    except psycopg.Error as exc:
        raise backend_error(exc, describe(conninfo)) from exc
    version = tuple(int(part) for part in str(row[0] if row else "0").split(".")[:2])
    if info is None or version < MIN_PGVECTOR:
        raise ConfigError(
            f"{describe(conninfo)} has pgvector {row[0] if row else 'missing'}; the store needs "
            "pgvector 0.8 or newer (ALTER EXTENSION vector UPDATE)"
        )
    return info


def _input_error(exc: Exception, document: DocumentRecord, collection: str) -> InputError:
    if isinstance(exc, errors.UniqueViolation):
        return InputError(
            f"document {document.id!r} ({document.source!r}) reuses a document or chunk id "
            f"already taken by another document in collection {collection!r}"
        )
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"{document.source}: PostgreSQL cannot store this document: {reason}")
