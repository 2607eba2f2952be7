"""Rank fusion for hybrid retrieval: reciprocal-rank fusion and normalised convex fusion.

Both are order-invariant in their inputs' listing order of equal-score items only through
their ranks; ties in the fused score are broken by chunk id so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ragserve.types import Hit


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[Hit]],
    *,
    k: int = 60,
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    """score(d) = Σ_r w_r / (k + rank_r(d)), rank 1-based (Cormack et al., 2009)."""
    fused: dict[str, float] = {}
    per_source: dict[str, dict[str, float]] = {}
    first_hit: dict[str, Hit] = {}
    for name, hits in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            cid = hit.chunk.id
            fused[cid] = fused.get(cid, 0.0) + weight / (k + rank)
            per_source.setdefault(cid, {})[name] = hit.score
            first_hit.setdefault(cid, hit)
    return _ranked(fused, per_source, first_hit)


def convex_fusion(
    rankings: Mapping[str, Sequence[Hit]],
    weights: Mapping[str, float],
) -> list[Hit]:
    """score(d) = Σ_r w_r · minmax_r(d), each list's scores min-max normalised to [0, 1];
    a document missing from a list contributes 0 for it (Bruch et al., 2023)."""
    fused: dict[str, float] = {}
    per_source: dict[str, dict[str, float]] = {}
    first_hit: dict[str, Hit] = {}
    for name, hits in rankings.items():
        if not hits:
            continue
        weight = weights.get(name, 0.0)
        scores = [h.score for h in hits]
        low, high = min(scores), max(scores)
        span = high - low
        for hit in hits:
            cid = hit.chunk.id
            normalised = (hit.score - low) / span if span > 0 else 1.0
            fused[cid] = fused.get(cid, 0.0) + weight * normalised
            per_source.setdefault(cid, {})[name] = hit.score
            first_hit.setdefault(cid, hit)
    return _ranked(fused, per_source, first_hit)


def _ranked(
    fused: dict[str, float], per_source: dict[str, dict[str, float]], first_hit: dict[str, Hit]
) -> list[Hit]:
    order = sorted(fused, key=lambda cid: (-fused[cid], cid))
    return [replace(first_hit[cid], score=fused[cid], scores=per_source[cid]) for cid in order]
