"""The reranker seam: reorder (and trim) retrieved hits for the question."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ragserve.types import Hit, Matrix


class Reranker(Protocol):
    def rerank(
        self,
        query: str,
        query_vector: Matrix,
        hits: Sequence[Hit],
        hit_vectors: Matrix,
        *,
        top_k: int,
    ) -> list[Hit]:
        """Return at most ``top_k`` hits, best first. ``hit_vectors`` rows align with ``hits``."""
        ...
