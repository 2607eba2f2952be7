"""The identity reranker: keeps retrieval order."""

from __future__ import annotations

from collections.abc import Sequence

from ragserve.types import Hit, Matrix


class NoReranker:
    def rerank(
        self,
        query: str,
        query_vector: Matrix,
        hits: Sequence[Hit],
        hit_vectors: Matrix,
        *,
        top_k: int,
    ) -> list[Hit]:
        return list(hits[:top_k])
