"""Rerankers: ``none`` and ``mmr``."""

from __future__ import annotations

from ragserve.config import RerankSettings
from ragserve.registry import Registry
from ragserve.rerank.base import Reranker

rerankers: Registry[RerankSettings, Reranker] = Registry("reranker")

__all__ = ["Reranker", "rerankers"]
