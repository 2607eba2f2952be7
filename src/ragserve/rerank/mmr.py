"""Maximal marginal relevance: trade relevance for diversity among the selected chunks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragserve.types import Hit, Matrix


class MmrReranker:
    """Greedy MMR (Carbonell & Goldstein, 1998):
    argmax_d λ·rel(d) − (1−λ)·max_{s∈S} cos(d, s), with rel the cosine to the query."""

    def __init__(self, lambda_: float = 0.7) -> None:
        self.lambda_ = lambda_

    def rerank(
        self,
        query: str,
        query_vector: Matrix,
        hits: Sequence[Hit],
        hit_vectors: Matrix,
        *,
        top_k: int,
    ) -> list[Hit]:
        if len(hits) == 0 or top_k <= 0:
            return []
        relevance = hit_vectors @ query_vector.reshape(-1)
        similarity = hit_vectors @ hit_vectors.T
        selected: list[int] = []
        candidates = list(range(len(hits)))
        max_sim = np.full(len(hits), -np.inf, dtype=np.float32)
        while candidates and len(selected) < top_k:
            redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
            scores = self.lambda_ * relevance - (1.0 - self.lambda_) * redundancy
            best = max(candidates, key=lambda i: (scores[i], -i))
            selected.append(best)
            candidates.remove(best)
            max_sim = np.maximum(max_sim, similarity[best])
        return [hits[i] for i in selected]
