"""The semantic index: a close question (cosine at or above the threshold) of the same scope
matches; other scopes and farther questions do not; the index stays bounded."""

from __future__ import annotations

import numpy as np

from ragserve.cache.semantic import SemanticIndex
from ragserve.types import Matrix


def unit(*values: float) -> Matrix:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_a_close_question_of_the_same_scope_matches() -> None:
    """Cosine 0.995 >= 0.95: the cached question's key comes back with its similarity."""
    index = SemanticIndex(0.95)
    index.add("scope", unit(1, 0, 0), "k1")
    match = index.lookup("scope", unit(1, 0.1, 0))
    assert match is not None
    assert match.key == "k1"
    assert round(match.similarity, 3) == 0.995


def test_a_far_question_or_another_scope_does_not_match() -> None:
    """Below the threshold, or in another scope (another collection version), no match."""
    index = SemanticIndex(0.95)
    index.add("scope", unit(1, 0, 0), "k1")
    assert index.lookup("scope", unit(1, 1, 0)) is None
    assert index.lookup("other-scope", unit(1, 0, 0)) is None


def test_the_most_similar_question_wins() -> None:
    """Among several above the threshold, the closest one's key is returned."""
    index = SemanticIndex(0.9)
    index.add("s", unit(1, 0.3, 0), "far")
    index.add("s", unit(1, 0.05, 0), "near")
    match = index.lookup("s", unit(1, 0, 0))
    assert match is not None
    assert match.key == "near"


def test_forget_and_bounds() -> None:
    """A forgotten key no longer matches; scopes and questions per scope stay bounded."""
    index = SemanticIndex(0.9, max_scopes=2, max_per_scope=2)
    index.add("s", unit(1, 0, 0), "a")
    index.forget("s", "a")
    assert index.lookup("s", unit(1, 0, 0)) is None
    for n in range(3):
        index.add("s", unit(1, n, 0), f"q{n}")
    for scope in ("t", "u"):
        index.add(scope, unit(0, 1, 0), scope)
    stats = index.stats()
    assert stats.entries == 2
    assert stats.evictions == 3  # q0 beyond max_per_scope, then scope "s" (q1, q2)


def test_delete_prefix_drops_a_tenants_scopes() -> None:
    """Scopes under the tenant prefix go with their questions."""
    index = SemanticIndex(0.9)
    index.add("t1:a", unit(1, 0), "k1")
    index.add("t2:a", unit(1, 0), "k2")
    assert index.delete_prefix("t1:") == 1
    assert index.lookup("t1:a", unit(1, 0)) is None
    assert index.lookup("t2:a", unit(1, 0)) is not None
