"""Retrieval by mode: dense, BM25 or hybrid (fused), over one tenant's collection."""

from __future__ import annotations

from dataclasses import dataclass

from ragserve.config import RetrieveSettings
from ragserve.retrieve.filters import Filter
from ragserve.retrieve.fusion import convex_fusion, reciprocal_rank_fusion
from ragserve.store.base import Store
from ragserve.types import Hit, Matrix, RetrievalMode


@dataclass(frozen=True)
class RetrievalRequest:
    tenant: str
    collection: str
    text: str
    vector: Matrix | None
    mode: RetrievalMode
    limit: int
    filters: Filter | None = None


def retrieve_single(store: Store, request: RetrievalRequest) -> list[Hit]:
    """The best ``request.limit`` chunks of a bm25 or dense search. A hybrid search is
    ``keyword_candidates`` and ``dense_candidates`` (which the service runs concurrently)
    combined by ``fuse``."""
    if request.mode == "bm25":
        return _keyword(store, request, request.limit)
    if request.mode == "dense":
        return _dense(store, request, request.limit)
    raise ValueError("hybrid retrieval is keyword_candidates + dense_candidates + fuse")


def candidate_pool(request: RetrievalRequest, settings: RetrieveSettings) -> int:
    """How many chunks each side of a hybrid search contributes to the fusion."""
    return max(settings.candidates, request.limit)


def fuse(
    dense: list[Hit], keyword: list[Hit], request: RetrievalRequest, settings: RetrieveSettings
) -> list[Hit]:
    """Fuse the two candidate lists with the configured method."""
    rankings = {"dense": dense, "bm25": keyword}
    if settings.fusion == "rrf":
        fused = reciprocal_rank_fusion(rankings, k=settings.rrf_k)
    else:
        weight = settings.dense_weight
        fused = convex_fusion(rankings, {"dense": weight, "bm25": 1.0 - weight})
    return fused[: request.limit]


def keyword_candidates(
    store: Store, request: RetrievalRequest, settings: RetrieveSettings
) -> list[Hit]:
    """The keyword side of a hybrid search; needs no query vector, so it can run while the
    query is being embedded."""
    return _keyword(store, request, candidate_pool(request, settings))


def dense_candidates(
    store: Store, request: RetrievalRequest, settings: RetrieveSettings
) -> list[Hit]:
    return _dense(store, request, candidate_pool(request, settings))


def _dense(store: Store, request: RetrievalRequest, limit: int) -> list[Hit]:
    if request.vector is None:
        raise ValueError("dense retrieval needs the query vector")
    return store.dense_search(
        request.tenant, request.collection, request.vector, limit=limit, filters=request.filters
    )


def _keyword(store: Store, request: RetrievalRequest, limit: int) -> list[Hit]:
    return store.keyword_search(
        request.tenant, request.collection, request.text, limit=limit, filters=request.filters
    )
