"""Keyword search of the embedded store: Lucene BM25 on the in-memory index, kept in step with
every write through the change log; FTS5's ``bm25()`` as the other engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragserve.analysis import terms
from ragserve.errors import ConfigError
from ragserve.retrieve.filters import parse_filter
from ragserve.store import lexical
from ragserve.store import sqlite as sqlite_module
from ragserve.store.sqlite import SqliteStore
from ragserve.store.sqlite_connections import database_path

Factory = Callable[..., Any]
WORDS = ["cell", "cells", "protein", "membrane", "energy", "river", "moon", "gene", "the", "of"]


def stored_chunks(path: Path) -> dict[str, list[str]]:
    """Every stored chunk's analysed terms, by chunk id, read from the chunk texts."""
    with closing(sqlite3.connect(path)) as conn:
        return {cid: terms(text) for cid, text in conn.execute("SELECT id, text FROM chunks")}


def scores(store: SqliteStore, query: str) -> dict[str, float]:
    return {h.chunk.id: h.score for h in store.keyword_search("t", "c", query, limit=1000)}


def assert_bm25(got: dict[str, float], expected: dict[str, float]) -> None:
    assert sorted(expected) == sorted(got)
    for key, score in expected.items():
        assert got[key] == pytest.approx(score, rel=1e-5)


def test_scores_are_lucene_bm25_of_the_stored_chunks(
    db_path: Path, sqlite_store: SqliteStore, make_doc: Factory, reference_bm25: Factory
) -> None:
    """Each hit's score is BM25 over the analysed chunk texts, a repeated query term twice."""
    sqlite_store.put_document("t", "c", *make_doc("a.txt", ["The cell membrane.", "Of the"]))
    sqlite_store.put_document("t", "c", *make_doc("b.txt", ["Cells make energy; cell cells"]))
    sqlite_store.put_document("t", "c", *make_doc("c.txt", ["The river and the moon", "gene"]))
    for query in ["cell", "cells energy moon", "membrane membrane cell", "river of the"]:
        expected = reference_bm25(stored_chunks(db_path), terms(query))
        assert_bm25(scores(sqlite_store, query), expected)


@pytest.fixture
def lexicon_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts whole-index builds (one entry per build)."""
    seen: list[int] = []
    original = sqlite_module.load_lexicon

    def counting(conn: sqlite3.Connection, collection_id: int, version: int) -> Any:
        seen.append(version)
        return original(conn, collection_id, version)

    monkeypatch.setattr(sqlite_module, "load_lexicon", counting)
    return seen


def random_writes(store: SqliteStore, make_doc: Factory, steps: int, seed: int) -> Iterator[int]:
    """Random adds, replacements and deletes, each chunk with a word of its own; yields after
    each."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        source = f"d{rng.integers(10)}.txt"
        if rng.random() < 0.25 and store.find_document("t", "c", source):
            store.delete_document("t", "c", make_doc(source, [])[0].id)
        else:
            texts = [
                " ".join([*rng.choice(WORDS, int(rng.integers(0, 6))), f"only{step}x{j}"])
                for j in range(rng.integers(0, 4))
            ]
            store.put_document("t", "c", *make_doc(source, texts))
        yield step


@pytest.mark.parametrize("fraction", [0.25, 1e9], ids=["default", "tail"])
def test_indexes_follow_writes_through_the_change_log(
    monkeypatch: pytest.MonkeyPatch,
    fraction: float,
    db_path: Path,
    open_sqlite: Callable[[], SqliteStore],
    make_doc: Factory,
    reference_bm25: Factory,
    lexicon_loads: list[int],
) -> None:
    """Writer and a second instance patch their indexes: after adds, replacements and deletes
    both score exactly like BM25 over what is stored (a word of removed text is not found),
    and each builds its whole index only once."""
    monkeypatch.setattr(lexical, "COMPACT_FRACTION", fraction)
    writer, reader = open_sqlite(), open_sqlite()
    writer.ensure_collection("t", "c")
    writer.put_document("t", "c", *make_doc("seed.txt", ["cell protein gene", "moon"]))
    for step in random_writes(writer, make_doc, 50, seed=11):
        chunks = stored_chunks(db_path)
        for query in ["cell protein energy", f"only{step}x0 only{step - 1}x1 moon"]:
            expected = reference_bm25(chunks, terms(query))
            assert_bm25(scores(writer, query), expected)
            assert_bm25(scores(reader, query), expected)
    assert len(lexicon_loads) == 2


def test_a_pruned_change_log_means_a_rebuild(
    db_path: Path,
    open_sqlite: Callable[[], SqliteStore],
    make_doc: Factory,
    reference_bm25: Factory,
    lexicon_loads: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader further behind than the kept log rebuilds its index, and scores right."""
    monkeypatch.setattr(sqlite_module, "CHANGES_KEPT", 3)
    writer, reader = open_sqlite(), open_sqlite()
    writer.ensure_collection("t", "c")
    writer.put_document("t", "c", *make_doc("seed.txt", ["cell"]))
    reader.keyword_search("t", "c", "cell", limit=1)
    for _ in random_writes(writer, make_doc, 10, seed=3):
        pass
    expected = reference_bm25(stored_chunks(db_path), terms("cell gene moon"))
    assert_bm25(scores(reader, "cell gene moon"), expected)
    assert len(lexicon_loads) == 2


def test_filters_see_a_replaced_document_as_it_is_now(
    sqlite_store: SqliteStore, make_doc: Factory
) -> None:
    """A document replaced in place (same row) is filtered by its new chunks only."""
    sqlite_store.put_document("t", "c", *make_doc("a.txt", ["cell one", "cell two"], {"k": 1}))
    sqlite_store.put_document("t", "c", *make_doc("b.txt", ["cell three"], {"k": 2}))
    sqlite_store.keyword_search("t", "c", "cell", limit=10)  # build the index before the change
    new = make_doc("a.txt", ["cell four"], {"k": 1})
    sqlite_store.put_document("t", "c", *new)
    for raw in ({"k": 1}, {"source": "a.txt"}, {"page": 1, "k": 1}):
        hits = sqlite_store.keyword_search("t", "c", "cell", limit=10, filters=parse_filter(raw))
        assert [h.chunk.id for h in hits] == [new[1][0].id]


def test_engine_is_chosen_by_argument_or_url(db_path: Path, make_doc: Factory) -> None:
    """``keyword_engine`` (or ``?keyword_engine=`` in the URL) picks FTS5 or the memory index;
    an unknown engine is refused with the available ones."""
    memory = SqliteStore(db_path)
    fts5 = SqliteStore.from_url(f"sqlite:///{db_path}?keyword_engine=fts5")
    try:
        memory.ensure_collection("t", "c")
        for i in range(3):
            memory.put_document("t", "c", *make_doc(f"{i}.txt", [f"common word {i}"]))
        # In every chunk: FTS5's IDF is clamped to ~0, Lucene's stays positive.
        assert fts5.keyword_engine == "fts5"
        assert 0 < fts5.keyword_search("t", "c", "common", limit=1)[0].score < 1e-5
        assert memory.keyword_search("t", "c", "common", limit=1)[0].score > 0.1
    finally:
        memory.close()
        fts5.close()
    with pytest.raises(ConfigError, match="memory, fts5"):
        SqliteStore.from_url(f"sqlite:///{db_path}?keyword_engine=lucene")
    assert database_path("sqlite://:memory:?keyword_engine=fts5") == ":memory:"
    assert SqliteStore.from_url("sqlite://:memory:").keyword_engine == "memory"
