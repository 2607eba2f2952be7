"""Re-indexing a collection for a configuration that chunks or embeds differently.

The new index is built beside the live one, in a collection the tenant cannot see
(``rows.shadow_name``), from each document's stored original, with the live documents' ids.
Queries and writes keep using the live collection meanwhile. Then rounds of catch-up bring the
shadow level with the live collection (documents added, changed or deleted since the build
began) and the store swaps the two in one transaction, switching the configuration with them,
provided the live collection did not change since the round began. The previous index is
deleted after the swap.

A build interrupted (worker lost, cancelled) leaves its shadow behind; the next attempt of the
same job resumes it (documents already indexed by the target pipeline are ``unchanged``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ragserve.errors import CollectionNotFound, Conflict, NotFoundError
from ragserve.ingestion import sha256
from ragserve.jobs.runner import JobFailed
from ragserve.store.rows import INTERNAL_MARK, shadow_name
from ragserve.types import DocumentRecord

if TYPE_CHECKING:
    from ragserve.runtime import Pipeline
    from ragserve.service import RagService

MAX_ROUNDS = 20
"""Catch-up rounds before giving up on a collection written to faster than it is re-indexed."""
PAGE = 1000

Progress = Callable[[float], None]


@dataclass(frozen=True)
class ReindexReport:
    documents: int
    rebuilt: int
    removed: int
    rounds: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "documents": self.documents,
            "rebuilt": self.rebuilt,
            "removed": self.removed,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 3),
        }


def reindex(
    service: RagService,
    tenant: str,
    collection: str,
    target: Pipeline,
    config: tuple[str, int] | None,
    *,
    tag: str,
    progress: Progress,
) -> ReindexReport:
    """Rebuild ``collection`` with ``target``, then swap it in using ``config``."""
    started = time.perf_counter()
    store = service.store
    _drop_retired(service, tenant, collection)
    shadow = shadow_name(collection, tag)
    store.ensure_collection(tenant, shadow)
    ingestor = service.pipeline_ingestor(target)
    rebuilt = removed = 0
    for round_ in range(1, MAX_ROUNDS + 1):
        version = store.get_collection(tenant, collection).version
        live = _documents(service, tenant, collection)
        built = {d.id: d for d in _documents(service, tenant, shadow)}
        for done, record in enumerate(live, start=1):
            current = built.get(record.id)
            if current is None or current.content_hash != record.content_hash:
                data = _original(service, record)
                outcome = ingestor.reingest(tenant, shadow, record, data, id_collection=collection)
                if outcome.status == "failed":
                    raise JobFailed(f"{record.source}: {outcome.error}")
                rebuilt += outcome.status != "unchanged"
            if round_ == 1:
                progress(0.05 + 0.9 * done / max(len(live), 1))
        for gone in set(built) - {d.id for d in live}:
            store.delete_document(tenant, shadow, gone)
            removed += 1
        try:
            retired = store.swap_collection(
                tenant, collection, shadow, expected_version=version, config=config
            )
        except Conflict:
            continue  # written to meanwhile: catch up again
        store.delete_collection(tenant, retired)
        seconds = time.perf_counter() - started
        return ReindexReport(len(live), rebuilt, removed, round_, seconds)
    raise JobFailed(
        f"collection {collection!r} kept changing during {MAX_ROUNDS} catch-up rounds; "
        "try again when writes are quieter",
        retryable=True,
    )


def drop_shadow(service: RagService, tenant: str, collection: str, tag: str) -> None:
    """Remove a build that will not be swapped in (its job was cancelled or failed)."""
    with contextlib.suppress(CollectionNotFound):
        service.store.delete_collection(tenant, shadow_name(collection, tag))


def _drop_retired(service: RagService, tenant: str, collection: str) -> None:
    """An earlier swap's previous index left behind by a worker lost before deleting it."""
    prefix = f"{collection}{INTERNAL_MARK}retired{INTERNAL_MARK}"
    for info in service.store.all_collections():
        if info.tenant == tenant and info.name.startswith(prefix):
            service.store.delete_collection(tenant, info.name)


def _documents(service: RagService, tenant: str, collection: str) -> list[DocumentRecord]:
    found: list[DocumentRecord] = []
    while page := service.store.list_documents(tenant, collection, limit=PAGE, offset=len(found)):
        found.extend(page)
    return found


def _original(service: RagService, record: DocumentRecord) -> bytes:
    """The bytes the document was ingested from: its stored original, else the file it was
    read from if that still holds the same content. Nothing is guessed: a document with
    neither fails the re-index, and the live index stays as it is."""
    try:
        return service.blobs.get(record.id)
    except NotFoundError:
        pass
    path = Path(record.source)
    if path.is_absolute() and path.is_file():
        data = path.read_bytes()
        if sha256(data) == record.content_hash:
            return data
    raise JobFailed(
        f"{record.source}: no stored original to re-index from (ingested from a path that "
        "has changed or gone); ingest it again, then change the configuration"
    )
