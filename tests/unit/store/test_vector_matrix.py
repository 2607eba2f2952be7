"""Exact top-k on the in-memory matrix, delta patching, and the per-collection cache."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ragserve.store.vectors import Delta, VectorCache, VectorMatrix, ids
from ragserve.types import Matrix

DIM = 8


def unit_rows(n: int, seed: int) -> Matrix:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def matrix_of(state: dict[int, tuple[int, Matrix]], version: int) -> VectorMatrix:
    """A matrix built from scratch from ``key -> (document, row)``."""
    keys = sorted(state)
    blobs = [state[k][1].tobytes() for k in keys]
    return VectorMatrix.from_blobs(version, DIM, keys, [state[k][0] for k in keys], blobs)


@pytest.fixture
def matrix() -> VectorMatrix:
    rows = unit_rows(500, 0)
    state = {3 * i + 1: (i // 10, rows[i]) for i in range(500)}
    return matrix_of(state, 1)


def test_top_matches_a_full_sort(matrix: VectorMatrix) -> None:
    """top() returns the k best keys in score order, as a full sort would."""
    query = unit_rows(1, 1)[0]
    keys, scores = matrix.top(query, 10)
    full = matrix.matrix @ query
    order = np.argsort(-full)[:10]
    assert matrix.keys[order].tolist() == keys.tolist()
    np.testing.assert_allclose(full[order], scores, rtol=1e-6)


@pytest.mark.parametrize("allowed", [5, 400])
def test_top_within_positions_scores_only_allowed_rows(matrix: VectorMatrix, allowed: int) -> None:
    """Restricted to some rows (gathered or masked), top() ranks exactly those rows."""
    query = unit_rows(1, 2)[0]
    positions = ids(np.random.default_rng(3).choice(matrix.rows, allowed, replace=False))
    keys, _ = matrix.top(query, 20, positions)
    full = matrix.matrix @ query
    expected = positions[np.argsort(-full[positions])][:20]
    assert matrix.keys[expected].tolist() == keys.tolist()


def test_top_handles_small_and_empty_inputs(matrix: VectorMatrix) -> None:
    """A limit beyond the rows returns all rows; an empty matrix returns nothing."""
    query = unit_rows(1, 4)[0]
    assert matrix.top(query, 10_000)[0].size == matrix.rows
    empty = VectorMatrix.from_blobs(1, DIM, [], [], [])
    assert empty.top(query, 5)[0].size == 0


def test_positions_skip_unknown_keys(matrix: VectorMatrix) -> None:
    """Keys map to their rows; keys not in the matrix are ignored."""
    positions = matrix.positions(ids([4, 2, 1, 10_000, 1498]))
    assert matrix.keys[positions].tolist() == [4, 1, 1498]
    assert matrix.positions_of_documents(ids([49])).tolist() == list(range(490, 500))


def test_from_blobs_refuses_ragged_rows() -> None:
    """Vectors of another width cannot be loaded silently."""
    with pytest.raises(ValueError, match="float32"):
        VectorMatrix.from_blobs(1, DIM, [1, 2], [1, 1], [b"\0" * 32, b"\0" * 28])


def random_deltas(
    state: dict[int, tuple[int, Matrix]], count: int, seed: int
) -> tuple[list[Delta], dict[int, tuple[int, Matrix]]]:
    """Random deletes and inserts (re-using keys too), and the state they lead to."""
    rng = np.random.default_rng(seed)
    state = dict(state)
    deltas = []
    for step in range(count):
        removed = [k for k in state if rng.random() < 0.05]
        for key in removed:
            del state[key]
        start = (max(state) + 1) if state and rng.random() < 0.7 else int(rng.integers(0, 50))
        added = [k for k in range(start, start + int(rng.integers(0, 6))) if k not in state]
        rows = unit_rows(len(added), seed * 1000 + step)
        for key, row in zip(added, rows, strict=True):
            state[key] = (step, row)
        deltas.append(
            Delta(10 + step, 11 + step, ids(removed), ids(added), ids([step] * len(added)), rows)
        )
    return deltas, state


@pytest.mark.parametrize("seed", range(5))
def test_apply_equals_a_rebuild(seed: int) -> None:
    """Patching with a chain of deltas gives the matrix a full reload would."""
    rows = unit_rows(100, seed)
    start = {2 * i: (0, rows[i]) for i in range(100)}
    deltas, final = random_deltas(start, 30, seed)
    patched = matrix_of(start, 10).apply(deltas)
    rebuilt = matrix_of(final, 40)
    assert patched.version == 40
    assert patched.keys.tolist() == rebuilt.keys.tolist()
    assert patched.documents.tolist() == rebuilt.documents.tolist()
    np.testing.assert_array_equal(patched.matrix, rebuilt.matrix)
    assert patched.matrix.flags.c_contiguous


def fail() -> VectorMatrix:
    raise AssertionError("should have been patched, not loaded")


def test_cache_patches_own_writes_and_reloads_on_foreign_ones(matrix: VectorMatrix) -> None:
    """Consecutive recorded deltas are applied; a gap in the chain forces a reload."""
    cache = VectorCache()
    assert cache.get(7, 1, lambda: matrix) is matrix
    assert cache.get(7, 1, fail) is matrix
    added = unit_rows(2, 9)
    cache.record(7, Delta(1, 4, ids([1]), ids([2000, 2001]), ids([99, 99]), added))
    patched = cache.get(7, 4, fail)
    assert (patched.version, patched.rows) == (4, matrix.rows + 1)
    cache.record(7, Delta(6, 7, ids([]), ids([3000]), ids([5]), unit_rows(1, 3)))
    reloaded = VectorMatrix.from_blobs(7, DIM, [], [], [])
    assert cache.get(7, 7, lambda: reloaded) is reloaded  # 4 -> 6 was another writer's


def test_cache_drops_a_matrix_when_deltas_outgrow_it(matrix: VectorMatrix) -> None:
    """A bulk load discards the cached matrix rather than holding every delta in memory."""
    cache = VectorCache(max_pending_fraction=0.5, min_pending_rows=10)
    cache.get(1, 1, lambda: matrix)
    big = unit_rows(300, 5)
    cache.record(1, Delta(1, 2, ids([]), ids(range(5000, 5300)), ids([0] * 300), big))
    fresh = VectorMatrix.from_blobs(2, DIM, [], [], [])
    assert cache.get(1, 2, lambda: fresh) is fresh


def test_cache_ignores_deltas_already_in_the_matrix(matrix: VectorMatrix) -> None:
    """A delta older than the cached version is not applied twice."""
    cache = VectorCache()
    at_five = replace(matrix, version=5)
    cache.get(1, 5, lambda: at_five)
    cache.record(1, Delta(4, 5, ids([1]), ids([]), ids([]), unit_rows(0, 1)))
    assert cache.get(1, 5, fail) is at_five
