"""Reciprocal-rank and convex fusion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragserve.retrieve.fusion import convex_fusion, reciprocal_rank_fusion
from ragserve.types import Chunk, Hit


def hit(cid: str, score: float) -> Hit:
    chunk = Chunk(cid, "doc", 0, cid, 1, 0, len(cid), 1)
    return Hit(chunk=chunk, score=score)


def test_rrf_scores_follow_the_formula() -> None:
    """RRF gives each chunk the sum of 1/(k + rank) over the lists that contain it."""
    fused = reciprocal_rank_fusion(
        {"dense": [hit("a", 0.9), hit("b", 0.8)], "bm25": [hit("b", 7.0), hit("c", 3.0)]}, k=60
    )
    scores = {h.chunk.id: h.score for h in fused}
    assert scores == pytest.approx({"b": 1 / 62 + 1 / 61, "a": 1 / 61, "c": 1 / 62})
    assert [h.chunk.id for h in fused] == ["b", "a", "c"]


def test_rrf_keeps_each_retrievers_raw_score() -> None:
    """A fused hit remembers the score every retriever gave it."""
    fused = reciprocal_rank_fusion({"dense": [hit("a", 0.5)], "bm25": [hit("a", 4.0)]})
    assert fused[0].scores == {"dense": 0.5, "bm25": 4.0}


def test_convex_fusion_normalises_each_list() -> None:
    """Convex fusion min-max normalises each list and weights them."""
    fused = convex_fusion(
        {"dense": [hit("a", 0.9), hit("b", 0.5)], "bm25": [hit("b", 10.0), hit("c", 2.0)]},
        {"dense": 0.25, "bm25": 0.75},
    )
    scores = {h.chunk.id: h.score for h in fused}
    assert scores == pytest.approx({"a": 0.25, "b": 0.75, "c": 0.0})


def test_convex_fusion_single_item_list_counts_fully() -> None:
    """A list with one hit (no spread) gives that hit the full weight."""
    fused = convex_fusion({"dense": [hit("a", 0.3)], "bm25": []}, {"dense": 0.4, "bm25": 0.6})
    assert [(h.chunk.id, h.score) for h in fused] == [("a", pytest.approx(0.4))]


scored_lists = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.floats(0, 100, allow_nan=False)),
    max_size=8,
    unique_by=lambda t: t[0],
)


@given(scored_lists, scored_lists)
def test_fusion_is_invariant_to_the_order_of_retrievers(
    dense: list[tuple[str, float]], bm25: list[tuple[str, float]]
) -> None:
    """Swapping which retriever is listed first never changes the fused ranking."""
    d = [hit(c, s) for c, s in sorted(dense, key=lambda t: -t[1])]
    b = [hit(c, s) for c, s in sorted(bm25, key=lambda t: -t[1])]
    weights = {"dense": 0.5, "bm25": 0.5}
    for fuse in (
        lambda r: reciprocal_rank_fusion(r),
        lambda r: convex_fusion(r, weights),
    ):
        one = [(h.chunk.id, round(h.score, 9)) for h in fuse({"dense": d, "bm25": b})]
        two = [(h.chunk.id, round(h.score, 9)) for h in fuse({"bm25": b, "dense": d})]
        assert one == two
        assert len(one) == len({c for c, _ in dense} | {c for c, _ in bm25})
