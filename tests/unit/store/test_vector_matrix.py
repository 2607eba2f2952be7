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


def random_change(
    state: dict[int, tuple[int, Matrix]], seed: int
) -> tuple[Delta, dict[int, tuple[int, Matrix]]]:
    """A random net change (removals, new keys, a re-used key) and the state it leads to."""
    rng = np.random.default_rng(seed)
    state = dict(state)
    removed = [k for k in state if rng.random() < 0.2] + [10_000]  # plus one never present
    for key in removed:
        state.pop(key, None)
    top = max(state) + 1
    added = [removed[0], *range(top, top + int(rng.integers(0, 30)))]
    rows = unit_rows(len(added), seed + 100)
    for key, row in zip(added, rows, strict=True):
        state[key] = (7, row)
    delta = Delta(10, 11, ids(removed), ids(added), ids([7] * len(added)), rows)
    return delta, state


@pytest.mark.parametrize("seed", range(5))
def test_apply_equals_a_rebuild(seed: int) -> None:
    """Patching with a net change gives the matrix a full reload would, keys kept sorted."""
    rows = unit_rows(100, seed)
    start = {2 * i: (0, rows[i]) for i in range(100)}
    delta, final = random_change(start, seed)
    patched = matrix_of(start, 10).apply(delta)
    rebuilt = matrix_of(final, 11)
    assert patched.version == 11
    assert patched.keys.tolist() == rebuilt.keys.tolist()
    assert patched.documents.tolist() == rebuilt.documents.tolist()
    np.testing.assert_array_equal(patched.matrix, rebuilt.matrix)
    assert patched.matrix.flags.c_contiguous


def test_apply_refuses_a_delta_from_another_version(matrix: VectorMatrix) -> None:
    """A change that does not start at the matrix's version is a bug, not a patch."""
    with pytest.raises(ValueError, match="version"):
        matrix.apply(Delta(5, 6, ids([]), ids([]), ids([]), unit_rows(0, 1)))


def fail(*_: object) -> VectorMatrix:
    raise AssertionError("should not have been called")


def test_cache_serves_the_cached_version_without_io(matrix: VectorMatrix) -> None:
    """The first get loads; later gets at that version touch neither loader."""
    cache = VectorCache()
    assert cache.get(7, 1, lambda: matrix, fail) is matrix
    assert cache.get(7, 1, fail, fail) is matrix


def test_cache_patches_when_the_changes_are_known(matrix: VectorMatrix) -> None:
    """A newer version is reached by applying catch_up's delta, not by reloading."""
    cache = VectorCache()
    cache.get(7, 1, lambda: matrix, fail)
    delta = Delta(1, 4, ids([1]), ids([2000, 2001]), ids([99, 99]), unit_rows(2, 9))
    patched = cache.get(7, 4, fail, lambda cached: delta)
    assert (patched.version, patched.rows) == (4, matrix.rows + 1)
    assert cache.get(7, 4, fail, fail) is patched


def test_cache_reloads_when_the_changes_are_unknown(matrix: VectorMatrix) -> None:
    """When catch_up cannot tell what changed, the matrix is loaded whole."""
    cache = VectorCache()
    cache.get(7, 1, lambda: matrix, fail)
    reloaded = replace(matrix, version=9)
    assert cache.get(7, 9, lambda: reloaded, lambda cached: None) is reloaded


def test_cache_keeps_the_newer_matrix(matrix: VectorMatrix) -> None:
    """A reader on an older snapshot gets its own matrix without evicting the newer one."""
    cache = VectorCache()
    newer = replace(matrix, version=5)
    cache.get(1, 5, lambda: newer, fail)
    older = replace(matrix, version=3)
    assert cache.get(1, 3, lambda: older, fail) is older
    assert cache.get(1, 5, fail, fail) is newer
    cache.discard(1)
    assert cache.get(1, 5, lambda: older, fail) is older
