"""Maximal marginal relevance."""

from __future__ import annotations

import numpy as np

from ragserve.rerank.mmr import MmrReranker
from ragserve.rerank.none import NoReranker
from ragserve.types import Chunk, Hit


def hits(n: int) -> list[Hit]:
    return [Hit(Chunk(str(i), "d", i, "t", 1, 0, 1, 1), score=1.0 - i / 10) for i in range(n)]


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_mmr_skips_a_near_duplicate_for_a_diverse_hit() -> None:
    """With λ=0.5, a near-copy of the best hit loses to a less similar relevant one."""
    query = unit(1, 0, 0)
    vectors = np.vstack([unit(1, 0.1, 0), unit(1, 0.12, 0), unit(0.7, 0, 0.7)])
    ranked = MmrReranker(0.5).rerank("q", query, hits(3), vectors, top_k=2)
    assert [h.chunk.id for h in ranked] == ["0", "2"]


def test_mmr_with_lambda_one_is_pure_relevance() -> None:
    """λ=1 orders by cosine to the query alone."""
    query = unit(1, 0, 0)
    vectors = np.vstack([unit(0.2, 1, 0), unit(1, 0.1, 0), unit(1, 0.5, 0)])
    ranked = MmrReranker(1.0).rerank("q", query, hits(3), vectors, top_k=3)
    assert [h.chunk.id for h in ranked] == ["1", "2", "0"]


def test_rerankers_respect_top_k_and_empty_input() -> None:
    """Both rerankers return at most top_k hits and nothing for no hits."""
    vectors = np.eye(3, dtype=np.float32)
    for reranker in (MmrReranker(0.7), NoReranker()):
        assert len(reranker.rerank("q", vectors[0], hits(3), vectors, top_k=2)) == 2
        assert reranker.rerank("q", vectors[0], [], np.zeros((0, 3), np.float32), top_k=2) == []
