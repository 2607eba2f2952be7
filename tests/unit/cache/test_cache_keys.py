"""Cache keys: spellings of one question share a key; any other difference (tenant,
collection, version, configuration, parameter) makes a different key."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragserve.cache.keys import (
    answer_fingerprint,
    cache_key,
    normalise_question,
    retrieval_fingerprint,
    tenant_prefix,
)
from ragserve.config import Settings

PARAMS: dict[str, Any] = {"mode": "hybrid", "top_k": 5, "filters": None, "max_tokens": None}
BASE: dict[str, Any] = {
    "kind": "answer",
    "tenant": "acme",
    "collection": "docs",
    "version": 7,
    "fingerprint": "f" * 16,
    "question": "When does the bell ring?",
    "params": PARAMS,
}


def key(**changes: Any) -> str:
    return cache_key(**{**BASE, **changes})


@pytest.mark.parametrize(
    "spelling",
    [
        "When does the bell ring?",
        "when does the bell ring",
        "  WHEN   does\tthe bell\nring ?? ",
        "When does the bell ring!",
        "Ｗｈｅｎ does the bell ring？",  # full-width letters and question mark (NFKC)
    ],
)
def test_spellings_of_one_question_share_a_key(spelling: str) -> None:
    """Case, spacing, full-width forms and trailing punctuation do not change the key."""
    assert key(question=spelling) == key()


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "search"},
        {"tenant": "other"},
        {"collection": "docs2"},
        {"version": 8},
        {"fingerprint": "e" * 16},
        {"question": "When does the bell stop?"},
        {"question": "When does the bell ring at night?"},
        {"params": {**PARAMS, "mode": "bm25"}},
        {"params": {**PARAMS, "top_k": 6}},
        {"params": {**PARAMS, "filters": {"lang": "en"}}},
        {"params": {**PARAMS, "max_tokens": 64}},
    ],
    ids=lambda change: next(iter(change)) + "=" + str(next(iter(change.values())))[:20],
)
def test_any_other_difference_changes_the_key(change: dict[str, Any]) -> None:
    """Each field of the key, changed alone, gives a different key."""
    assert key(**change) != key()


@given(st.integers(min_value=0, max_value=2**62), st.integers(min_value=1, max_value=2**20))
def test_a_new_collection_version_never_reuses_a_key(version: int, step: int) -> None:
    """Whatever the version, the next one (after an ingest, update or delete) keys apart."""
    assert key(version=version) != key(version=version + step)


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=4))
def test_filters_key_the_same_whatever_their_order(filters: dict[str, int]) -> None:
    """Filters are canonical JSON: the same filter written in another order is one key."""
    reordered = dict(reversed(list(filters.items())))
    assert key(params={**PARAMS, "filters": filters}) == key(
        params={**PARAMS, "filters": reordered}
    )


def test_keys_are_fixed_length_under_the_tenant_prefix() -> None:
    """Keys never show the tenant or the question, and start with the tenant's prefix."""
    long = key(question="why " * 900)
    assert long.startswith(tenant_prefix("acme"))
    assert len(long) == len(key())
    assert "acme" not in long
    assert tenant_prefix("acme") != tenant_prefix("acme2")


def test_normalise_question_keeps_inner_punctuation() -> None:
    """Only trailing punctuation goes: 'C++' and 'U.S.' keep their meaning inside."""
    assert normalise_question("Is C++ used in the U.S. army?") == "is c++ used in the u.s. army"


def test_fingerprints_follow_the_configuration() -> None:
    """Retrieval, rerank, LLM settings and the generator each change the fingerprint."""
    base = Settings()
    retrieval = retrieval_fingerprint(base, "pipe")
    assert retrieval_fingerprint(base, "pipe2") != retrieval
    changed = Settings(retrieve={"dense_weight": 0.4})
    assert retrieval_fingerprint(changed, "pipe") != retrieval
    assert retrieval_fingerprint(Settings(rerank={"name": "mmr"}), "pipe") != retrieval
    answer = answer_fingerprint(base, retrieval, "extractive")
    assert answer_fingerprint(base, retrieval, "openai:http://h/v1:m") != answer
    assert answer_fingerprint(Settings(llm={"temperature": 0.5}), retrieval, "extractive") != answer
    assert answer_fingerprint(base, retrieval, "extractive") == answer
