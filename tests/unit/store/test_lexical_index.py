"""The in-memory BM25 index: scores against a from-scratch BM25, patches against rebuilds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytest

from ragserve.store import lexical
from ragserve.store.lexical import LexicalIndex, TermsDelta
from ragserve.store.vectors import ids

State = dict[int, tuple[int, str]]
"""chunk key -> (document, analysed terms joined by spaces)"""
Bm25 = Callable[[Mapping[int, Sequence[str]], Sequence[str]], dict[int, float]]

WORDS = [f"w{i}" for i in range(40)]
# Zipf-like: the first words occur in most chunks, where FTS5's IDF would be near zero.
WEIGHTS = np.array([1 / (i + 1) for i in range(len(WORDS))]) / sum(1 / (i + 1) for i in range(40))


def random_text(rng: np.random.Generator, extra: Sequence[str] = ()) -> str:
    size = int(rng.integers(0, 12))
    words = list(rng.choice(WORDS, size=size, p=WEIGHTS)) + list(extra)
    return " ".join(words)


def random_state(seed: int, size: int = 200) -> State:
    rng = np.random.default_rng(seed)
    return {3 * i + 1: (i // 4, random_text(rng)) for i in range(size)}


def tokens(state: Mapping[int, tuple[int, str]]) -> dict[int, list[str]]:
    return {key: text.split() for key, (_, text) in state.items()}


def build(state: Mapping[int, tuple[int, str]], version: int = 1) -> LexicalIndex:
    keys = sorted(state)
    batch = (ids(keys), ids([state[k][0] for k in keys]), [state[k][1] for k in keys])
    return LexicalIndex.build(version, [batch])


def results(index: LexicalIndex, query: Sequence[str], limit: int = 10_000) -> dict[int, float]:
    keys, scores = index.top(query, limit)
    return dict(zip(keys.tolist(), scores.tolist(), strict=True))


QUERIES = [["w0"], ["w1", "w5", "w17"], ["w3", "w3", "w9"], ["w39", "unknown"], ["new0", "w2"]]


@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_a_from_scratch_bm25(reference_bm25: Bm25, query: list[str]) -> None:
    """Every matching chunk gets exactly Lucene's BM25 score; non-matching chunks none."""
    state = random_state(0)
    expected = reference_bm25(tokens(state), query)
    got = results(build(state), query)
    assert sorted(expected) == sorted(got)
    for key, score in expected.items():
        assert got[key] == pytest.approx(score, rel=1e-5)


def test_top_is_best_first_with_ties_in_key_order() -> None:
    """top() returns the limit best in descending score; equal scores by ascending key."""
    state = {5: (1, "b a"), 2: (1, "a b"), 9: (2, "a c c c"), 7: (3, "d")}
    keys, scores = build(state).top(["a"], 2)
    assert keys.tolist() == [2, 5]
    assert scores[0] == scores[1]
    full = build(state).top(["a", "c"], 10)
    assert full[0].tolist() == [9, 2, 5]
    assert list(full[1]) == sorted(full[1], reverse=True)


def test_queries_without_known_terms_and_empty_indexes_find_nothing() -> None:
    """Unknown terms are ignored; an empty query or index returns nothing."""
    index = build(random_state(1))
    assert index.top(["nope"], 10)[0].size == 0
    assert index.top([], 10)[0].size == 0
    assert index.top(["w0"], 0)[0].size == 0
    empty = build({})
    assert (empty.slots, empty.top(["w0"], 10)[0].size) == (0, 0)


def test_chunks_without_terms_take_no_slot_and_do_not_count() -> None:
    """An empty chunk is not indexed and does not change N or the average length."""
    with_empty = build({1: (1, "a b"), 2: (1, ""), 3: (2, "b")})
    without = build({1: (1, "a b"), 3: (2, "b")})
    assert with_empty.slots == 2
    assert results(with_empty, ["a", "b"]) == results(without, ["a", "b"])
    assert with_empty.positions(ids([2, 3])).tolist() == [1]


def test_top_within_positions_ranks_only_those(reference_bm25: Bm25) -> None:
    """Restricted to some slots, top() returns the matching ones among them only."""
    state = random_state(2)
    index = build(state)
    allowed = index.positions(ids([k for k in state if k % 2 == 0]))
    keys, _ = index.top(["w0", "w1"], 10_000, allowed)
    expected = {k for k in reference_bm25(tokens(state), ["w0", "w1"]) if k % 2 == 0}
    assert expected == set(keys.tolist())


def random_change(state: State, seed: int, version: int) -> tuple[TermsDelta, State]:
    """Random removals (one never present) and additions (some empty, some with new terms)."""
    rng = np.random.default_rng(seed)
    after = dict(state)
    removed = [k for k in state if rng.random() < 0.15] + [10**9]
    for key in removed:
        after.pop(key, None)
    top = max([*state, 0]) + 1
    added = list(range(top, top + int(rng.integers(0, 25))))
    for key in added:
        extra = [f"new{int(rng.integers(0, 5))}"] if rng.random() < 0.3 else []
        after[key] = (int(rng.integers(0, 60)), random_text(rng, extra))
    delta = TermsDelta(
        version,
        version + 1,
        ids(removed),
        ids(added),
        ids([after[k][0] for k in added]),
        [after[k][1] for k in added],
    )
    return delta, after


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1e9], ids=["compact", "default", "tail"])
@pytest.mark.parametrize("seed", range(3))
def test_patches_equal_a_rebuild(
    monkeypatch: pytest.MonkeyPatch, fraction: float, seed: int
) -> None:
    """After a chain of patches (merged at once, by default, or kept in the tail), searches and
    filters give exactly what an index built from scratch gives."""
    monkeypatch.setattr(lexical, "COMPACT_FRACTION", fraction)
    state = random_state(seed)
    index = build(state)
    for step in range(12):
        delta, state = random_change(state, seed * 100 + step, index.version)
        index = index.apply(delta)
        rebuilt = build(state, index.version)
        for query in QUERIES:
            got, expected = results(index, query), results(rebuilt, query)
            assert sorted(expected) == sorted(got)
            for key, score in expected.items():
                assert got[key] == pytest.approx(score, rel=1e-5)
        wanted = ids([7, 9, 11, 10**9])
        assert set(index.keys[index.positions_of_documents(wanted)].tolist()) == set(
            rebuilt.keys[rebuilt.positions_of_documents(wanted)].tolist()
        )
        some = ids(sorted(state)[::3])
        assert (
            index.keys[index.positions(some)].tolist()
            == rebuilt.keys[rebuilt.positions(some)].tolist()
        )


def test_compaction_drops_dead_slots_and_terms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merging leaves only live slots, one postings list and the terms still in use."""
    monkeypatch.setattr(lexical, "COMPACT_FRACTION", 0.0)
    index = build({1: (1, "gone shared"), 2: (2, "kept shared")})
    patched = index.apply(TermsDelta(1, 2, ids([1]), ids([3]), ids([3]), ["fresh"]))
    assert (patched.slots, patched.live, patched.tail.size) == (2, 2, 0)
    assert sorted(patched.vocabulary) == ["fresh", "kept", "shared"]
    assert results(patched, ["gone"]) == {}
    assert sorted(results(patched, ["shared", "fresh"])) == [2, 3]


def test_patch_keeps_the_original_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """A patch builds a new index; searches on the old one still see the old version."""
    monkeypatch.setattr(lexical, "COMPACT_FRACTION", 1e9)
    index = build({1: (1, "alpha"), 2: (1, "beta")})
    before = results(index, ["alpha", "gamma"])
    patched = index.apply(TermsDelta(1, 2, ids([1]), ids([5]), ids([2]), ["gamma"]))
    assert results(index, ["alpha", "gamma"]) == before
    assert "gamma" not in index.vocabulary
    assert sorted(results(patched, ["alpha", "gamma"])) == [5]
    assert patched.positions(ids([1, 2, 5])).tolist() == [1, 2]  # key 1 is gone


def test_apply_refuses_deltas_that_do_not_fit() -> None:
    """A delta from another version, or adding keys below the indexed ones, is a bug."""
    index = build({4: (1, "a")})
    with pytest.raises(ValueError, match="version"):
        index.apply(TermsDelta(7, 8, ids([]), ids([]), ids([]), []))
    with pytest.raises(ValueError, match="follow"):
        index.apply(TermsDelta(1, 2, ids([]), ids([3]), ids([1]), ["b"]))
