"""Rerankers: ``none`` and ``mmr``."""

from __future__ import annotations

from ragserve.config import RerankSettings
from ragserve.registry import Registry
from ragserve.rerank.base import Reranker

rerankers: Registry[RerankSettings, Reranker] = Registry("reranker")


@rerankers.register("none")
def _none(settings: RerankSettings) -> Reranker:
    from ragserve.rerank.none import NoReranker

    return NoReranker()


@rerankers.register("mmr")
def _mmr(settings: RerankSettings) -> Reranker:
    from ragserve.rerank.mmr import MmrReranker

    return MmrReranker(settings.mmr_lambda)


__all__ = ["Reranker", "rerankers"]
