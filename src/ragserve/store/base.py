"""The store seam: the relational source of truth, with vector and keyword search.

Every method takes the tenant: isolation is enforced here, not by callers. A collection of
another tenant does not exist for the caller (``CollectionNotFound``); every per-collection
method raises it for a missing collection.

``CollectionInfo.version`` rises on every change and never repeats for a (tenant, name), even
after the collection is deleted and created again, so caches may key on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ragserve.retrieve.filters import Filter
from ragserve.store.accounts import AccountStore
from ragserve.store.experiments import ExperimentStore
from ragserve.store.jobs import JobStore
from ragserve.types import Chunk, CollectionInfo, DocumentRecord, Hit, IngestStatus, Matrix


class Store(Protocol):
    accounts: AccountStore
    """API keys, usage rows and tenant LLM settings, in the same database."""
    jobs: JobStore
    """Background jobs and their state machine, in the same database."""
    experiments: ExperimentStore
    """Pipeline configurations, experiments, query outcomes, feedback and evaluation runs, in
    the same database."""

    def ensure_collection(self, tenant: str, collection: str) -> CollectionInfo:
        """Create the collection if missing; return its current state."""
        ...

    def get_collection(self, tenant: str, collection: str) -> CollectionInfo:
        """Raises ``CollectionNotFound``."""
        ...

    def list_collections(self, tenant: str) -> list[CollectionInfo]:
        """The tenant's collections by name, without the store's own (``rows.INTERNAL_MARK``)."""
        ...

    def all_collections(self) -> list[CollectionInfo]:
        """Every tenant's collections, largest first: for operators and warm-up, never for
        a tenant's request."""
        ...

    def delete_collection(self, tenant: str, collection: str) -> None:
        """Remove the collection and every trace of its documents."""
        ...

    def set_collection_config(
        self, tenant: str, collection: str, config: tuple[str, int] | None
    ) -> CollectionInfo:
        """Make the collection use the stored configuration ``(name, version)`` (None: the
        server's own), under a new version."""
        ...

    def touch_collection(self, tenant: str, collection: str) -> CollectionInfo:
        """A new version and nothing else: every process re-reads what it keeps per version
        (the collection's running experiment); cached answers of older versions go unused."""
        ...

    def swap_collection(
        self,
        tenant: str,
        live: str,
        shadow: str,
        *,
        expected_version: int,
        config: tuple[str, int] | None,
    ) -> str:
        """In one transaction: ``live``'s documents become a collection of another name,
        returned (delete it next), and ``shadow``'s documents become ``live`` at a new
        version, using ``config``. Raises ``Conflict`` unless ``live`` is still at
        ``expected_version`` (a write landed since: catch the shadow up and swap again)."""
        ...

    def find_document(self, tenant: str, collection: str, source: str) -> DocumentRecord | None:
        """The stored document with this source key, if any."""
        ...

    def get_document(self, tenant: str, collection: str, document_id: str) -> DocumentRecord:
        """Raises ``DocumentNotFound``."""
        ...

    def list_documents(
        self,
        tenant: str,
        collection: str,
        *,
        limit: int = 100,
        offset: int = 0,
        match: str | None = None,
    ) -> list[DocumentRecord]:
        """A page of the documents by source. ``match`` keeps those whose source or title
        contains it, ignoring case: a plain substring (``%`` and ``_`` are no wildcards),
        both sides lower-cased by the backend (PostgreSQL's ``lower()`` under the database's
        locale; the embedded store Python's ``str.lower``, as SQLite folds ASCII only)."""
        ...

    def count_documents(self, tenant: str, collection: str, *, match: str | None = None) -> int:
        """How many documents ``list_documents`` with this ``match`` pages through."""
        ...

    def existing_vectors(self, tenant: str, collection: str, document_id: str) -> dict[str, Matrix]:
        """Vectors of the document's current chunks keyed by the sha256 hex of the chunk text,
        so an edited document re-embeds only the chunks that changed (empty for an unknown
        document)."""
        ...

    def put_document(
        self,
        tenant: str,
        collection: str,
        document: DocumentRecord,
        chunks: Sequence[Chunk],
        vectors: Matrix,
    ) -> IngestStatus:
        """Insert or replace the document and all its chunks in one transaction.

        Returns ``unchanged`` when a document with the same source, content hash and pipeline
        hash is already stored (nothing is written), ``replaced`` when an older version was
        swapped out, ``added`` otherwise. Bumps the collection version on any change.
        """
        ...

    def delete_document(self, tenant: str, collection: str, document_id: str) -> None:
        """Raises ``DocumentNotFound``; removes chunks, vectors and text-index rows."""
        ...

    def dense_search(
        self,
        tenant: str,
        collection: str,
        vector: Matrix,
        *,
        limit: int,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """Exact cosine search (vectors are normalised, so a dot product)."""
        ...

    def keyword_search(
        self,
        tenant: str,
        collection: str,
        query: str,
        *,
        limit: int,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """BM25 over the full-text index; higher score is better."""
        ...

    def get_chunks(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id in the given order (missing ids are skipped), with their vectors
        available through ``chunk_vectors``."""
        ...

    def document_chunks(
        self, tenant: str, collection: str, document_id: str, *, page: int | None = None
    ) -> list[Chunk]:
        """The document's chunks in ordinal order, only those of ``page`` when given; raises
        ``DocumentNotFound``."""
        ...

    def chunk_vectors(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> Matrix:
        """One row per id, in order; raises ``NotFoundError`` if any id is not stored."""
        ...

    def ping(self) -> None:
        """A cheap round trip; raises ``BackendError`` when the database is unreachable."""
        ...

    def close(self) -> None: ...
