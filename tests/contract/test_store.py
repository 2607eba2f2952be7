"""The Store contract: every backend in ``BACKENDS`` must pass this suite unchanged.

Real databases (a SQLite file per test), real text for BM25, seeded random unit vectors.
A backend joins by adding a URL factory to ``BACKENDS``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragserve.config import StoreSettings
from ragserve.errors import (
    CollectionNotFound,
    DocumentNotFound,
    InputError,
    InvalidQuery,
    NotFoundError,
)
from ragserve.retrieve.filters import parse_filter
from ragserve.store import Store, open_store
from ragserve.types import Chunk, DocumentRecord, Matrix

DIM = 16
T1, T2 = "tenant-a", "tenant-b"
COL = "papers"

Doc = tuple[DocumentRecord, list[Chunk], Matrix]


def vector_for(text: str, dim: int = DIM) -> Matrix:
    """A unit vector determined by the text, so equal texts get equal vectors."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    row = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return row / np.linalg.norm(row)


def make_doc(
    source: str,
    texts: Sequence[str],
    *,
    metadata: Mapping[str, Any] | None = None,
    pages: Sequence[int] | None = None,
    pipeline: str = "pipe-1",
    mime_type: str = "text/plain",
    dim: int = DIM,
) -> Doc:
    doc_id = "doc-" + hashlib.sha256(source.encode()).hexdigest()[:12]
    content = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    record = DocumentRecord(
        id=doc_id,
        source=source,
        title=f"Title of {source}",
        mime_type=mime_type,
        content_hash=content,
        pipeline_hash=pipeline,
        metadata=dict(metadata or {}),
        chunk_count=len(texts),
        page_count=max(pages or [1]),
    )
    chunks = [
        Chunk(
            id=f"{doc_id}-{i}",
            document_id=doc_id,
            ordinal=i,
            text=text,
            page=(pages[i] if pages else 1),
            start=0,
            end=len(text),
            token_count=len(text.split()),
            metadata={"ordinal": i, "section": f"s{i}"},
        )
        for i, text in enumerate(texts)
    ]
    vectors = np.stack([vector_for(t, dim) for t in texts]) if texts else np.zeros((0, dim))
    return record, chunks, vectors.astype(np.float32)


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'ragserve.db'}"


def sqlite_fts5_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The embedded store with keyword search by FTS5's ``bm25()`` instead of in memory."""
    return f"{sqlite_url(request, tmp_path)}?keyword_engine=fts5"


def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on the session's PostgreSQL (see ``tests/pg.py``)."""
    url: str = request.getfixturevalue("postgres_url")
    return url


def postgres_tsvector_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The server store with keyword search by BM25 in SQL over ``tsvector`` and dense search
    through the HNSW index whatever the collection's size (``exact_max=0``)."""
    return f"{postgres_url(request, tmp_path)}?keyword_engine=tsvector&exact_max=0"


# name -> a fresh, empty database's URL for one test; a server backend can reach its own
# (session) fixtures through ``request.getfixturevalue``.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite": sqlite_url,
    "sqlite-fts5": sqlite_fts5_url,
    "postgresql": postgres_url,
    "postgresql-tsvector": postgres_tsvector_url,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
def store_factory(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens independent store instances on the same database; closes them all after the test."""
    opened: list[Store] = []

    def open_one() -> Store:
        store = open_store(StoreSettings(url=store_url, busy_timeout_ms=10_000))
        opened.append(store)
        return store

    yield open_one
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    store = store_factory()
    store.ensure_collection(T1, COL)
    return store


def put(store: Store, doc: Doc, tenant: str = T1, collection: str = COL) -> str:
    return store.put_document(tenant, collection, *doc)


def sources(hits: Sequence[Any]) -> list[str]:
    return [h.document_source for h in hits]


# -- collections ----------------------------------------------------------------------------


def test_ensure_collection_is_idempotent(store: Store) -> None:
    """Ensuring an existing collection returns it unchanged."""
    first = store.get_collection(T1, COL)
    assert first == store.ensure_collection(T1, COL)
    assert (first.document_count, first.chunk_count) == (0, 0)
    assert [c.name for c in store.list_collections(T1)] == [COL]


def test_all_collections_lists_every_tenant_largest_first(store: Store) -> None:
    """The operator's view spans tenants and puts the largest collection first."""
    store.ensure_collection(T2, "empty")
    store.ensure_collection(T2, "big")
    put(store, make_doc("big.txt", ["one", "two", "three"]), tenant=T2, collection="big")
    listed = [(c.tenant, c.name, c.chunk_count) for c in store.all_collections()]
    assert listed[0] == (T2, "big", 3)
    assert sorted(listed[1:]) == [(T1, COL, 0), (T2, "empty", 0)]


def test_missing_collection_raises_everywhere(store: Store) -> None:
    """Every per-collection call on an unknown collection raises CollectionNotFound."""
    calls: list[Callable[[], object]] = [
        lambda: store.get_collection(T1, "nope"),
        lambda: store.delete_collection(T1, "nope"),
        lambda: store.find_document(T1, "nope", "a"),
        lambda: store.list_documents(T1, "nope"),
        lambda: store.list_documents(T1, "nope", match="a"),
        lambda: store.count_documents(T1, "nope"),
        lambda: store.count_documents(T1, "nope", match="a"),
        lambda: store.document_chunks(T1, "nope", "x"),
        lambda: store.existing_vectors(T1, "nope", "x"),
        lambda: put(store, make_doc("a", ["text"]), collection="nope"),
        lambda: store.delete_document(T1, "nope", "x"),
        lambda: store.dense_search(T1, "nope", vector_for("q"), limit=3),
        lambda: store.keyword_search(T1, "nope", "text", limit=3),
        lambda: store.get_chunks(T1, "nope", ["x"]),
        lambda: store.chunk_vectors(T1, "nope", ["x"]),
    ]
    for call in calls:
        with pytest.raises(CollectionNotFound):
            call()


def test_delete_collection_removes_it_and_a_recreated_one_starts_empty(store: Store) -> None:
    """A deleted collection is gone; re-creating the name gives an empty one, newer version."""
    put(store, make_doc("a.txt", ["alpha beta", "gamma delta"]))
    before = store.get_collection(T1, COL)
    store.delete_collection(T1, COL)
    with pytest.raises(CollectionNotFound):
        store.get_collection(T1, COL)
    again = store.ensure_collection(T1, COL)
    assert (again.document_count, again.chunk_count) == (0, 0)
    assert again.version > before.version
    assert store.keyword_search(T1, COL, "alpha", limit=5) == []
    assert store.dense_search(T1, COL, vector_for("alpha beta"), limit=5) == []


# -- put / replace / delete -----------------------------------------------------------------


def test_put_same_document_again_is_unchanged(store: Store) -> None:
    """Re-putting identical content and pipeline writes nothing and keeps the version."""
    doc = make_doc("a.txt", ["one fish", "two fish"])
    assert put(store, doc) == "added"
    before = store.get_collection(T1, COL)
    assert put(store, doc) == "unchanged"
    assert before == store.get_collection(T1, COL)
    assert (before.document_count, before.chunk_count) == (1, 2)


def test_put_bumps_version_and_counts(store: Store) -> None:
    """Every change raises the version; counts follow the stored rows."""
    v0 = store.get_collection(T1, COL).version
    put(store, make_doc("a.txt", ["one", "two", "three"]))
    v1 = store.get_collection(T1, COL)
    put(store, make_doc("b.txt", ["four"]))
    v2 = store.get_collection(T1, COL)
    assert v0 < v1.version < v2.version
    assert (v2.document_count, v2.chunk_count) == (2, 4)


def test_changed_document_replaces_old_chunks_everywhere(store: Store) -> None:
    """A changed document swaps every chunk: old text is gone from BM25, dense and get_chunks."""
    old = make_doc("a.txt", ["zebras graze savanna", "lions hunt zebras", "tail"])
    put(store, old)
    v1 = store.get_collection(T1, COL).version
    new = make_doc("a.txt", ["penguins swim antarctic", "tail"])
    assert put(store, new) == "replaced"
    info = store.get_collection(T1, COL)
    assert (info.document_count, info.chunk_count, info.version > v1) == (1, 2, True)
    assert store.keyword_search(T1, COL, "zebras savanna lions", limit=10) == []
    assert sources(store.keyword_search(T1, COL, "penguins", limit=10)) == ["a.txt"]
    texts = [h.chunk.text for h in store.dense_search(T1, COL, vector_for("x"), limit=10)]
    assert sorted(texts) == ["penguins swim antarctic", "tail"]
    assert store.get_chunks(T1, COL, [c.id for c in new[1]]) == new[1]
    assert store.get_chunks(T1, COL, [old[1][2].id]) == []  # the third chunk is gone


def test_changed_pipeline_replaces(store: Store) -> None:
    """Same content under another pipeline hash is a replacement."""
    put(store, make_doc("a.txt", ["same text"]))
    assert put(store, make_doc("a.txt", ["same text"], pipeline="pipe-2")) == "replaced"
    record = store.find_document(T1, COL, "a.txt")
    assert record is not None
    assert record.pipeline_hash == "pipe-2"


def test_delete_document_removes_every_trace(store: Store) -> None:
    """After delete, nothing of the document is found by any call, and counts drop."""
    doc = make_doc("gone.txt", ["ephemeral mayfly wings", "brief candle"])
    put(store, doc)
    put(store, make_doc("kept.txt", ["durable granite"]))
    before = store.get_collection(T1, COL).version
    store.delete_document(T1, COL, doc[0].id)
    info = store.get_collection(T1, COL)
    assert (info.document_count, info.chunk_count) == (1, 1)
    assert info.version > before
    assert store.find_document(T1, COL, "gone.txt") is None
    assert store.existing_vectors(T1, COL, doc[0].id) == {}
    assert store.get_chunks(T1, COL, [c.id for c in doc[1]]) == []
    assert store.keyword_search(T1, COL, "mayfly candle", limit=5) == []
    assert sources(store.dense_search(T1, COL, doc[2][0], limit=5)) == ["kept.txt"]
    with pytest.raises(DocumentNotFound):
        store.delete_document(T1, COL, doc[0].id)


def test_bad_input_raises_and_writes_nothing(store: Store) -> None:
    """Mismatched vectors, foreign chunks or an id clash raise InputError and leave no trace."""
    record, chunks, vectors = make_doc("a.txt", ["one", "two"])
    taken = make_doc("b.txt", ["three"])
    put(store, taken)
    before = store.get_collection(T1, COL)
    other = make_doc("c.txt", ["four"])
    same_id = replace(other[0], id=taken[0].id)
    same_chunk_id = replace(other[1][0], id=taken[1][0].id)
    bad: list[Doc] = [
        (record, chunks, vectors[:1]),
        (record, chunks, np.full_like(vectors, np.nan)),
        (record, [chunks[0], replace(chunks[1], document_id="other")], vectors),
        (replace(record, metadata={"when": object()}), chunks, vectors),
        make_doc("d.txt", ["wider"], dim=DIM * 2),
        (same_id, [replace(c, document_id=same_id.id) for c in other[1]], other[2]),
        (other[0], [same_chunk_id], other[2]),
    ]
    for doc in bad:
        with pytest.raises(InputError):
            put(store, doc)
    assert before == store.get_collection(T1, COL)
    assert [d.source for d in store.list_documents(T1, COL)] == ["b.txt"]


def test_vector_width_may_change_once_the_collection_is_empty(store: Store) -> None:
    """After every chunk is gone, vectors of another width (a new embedder) are accepted."""
    first = make_doc("a.txt", ["narrow vectors"])
    put(store, first)
    assert sources(store.dense_search(T1, COL, vector_for("q"), limit=3)) == ["a.txt"]
    store.delete_document(T1, COL, first[0].id)
    put(store, make_doc("b.txt", ["wide vectors"], dim=DIM * 2))
    hits = store.dense_search(T1, COL, vector_for("wide vectors", DIM * 2), limit=3)
    assert sources(hits) == ["b.txt"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_empty_document_is_stored_without_chunks(store: Store) -> None:
    """A document with no chunks is recorded (so re-ingest is a no-op) and searches still work."""
    assert put(store, make_doc("empty.txt", [])) == "added"
    assert put(store, make_doc("empty.txt", [])) == "unchanged"
    assert store.dense_search(T1, COL, vector_for("q"), limit=3) == []
    put(store, make_doc("a.txt", ["words"]))
    assert sources(store.dense_search(T1, COL, vector_for("q"), limit=3)) == ["a.txt"]


# -- reads ----------------------------------------------------------------------------------


def test_list_documents_pages_by_source(store: Store) -> None:
    """Documents come ordered by source, ``limit``/``offset`` paging through them."""
    for name in ["c.txt", "a.txt", "e.txt", "b.txt", "d.txt"]:
        put(store, make_doc(name, [f"text of {name}"], metadata={"n": name}))
    pages = [store.list_documents(T1, COL, limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [[d.source for d in p] for p in pages] == [
        ["a.txt", "b.txt"],
        ["c.txt", "d.txt"],
        ["e.txt"],
        [],
    ]
    record = store.find_document(T1, COL, "c.txt")
    assert record == make_doc("c.txt", ["text of c.txt"], metadata={"n": "c.txt"})[0]
    assert store.find_document(T1, COL, "zzz.txt") is None


# (source, title): each query below names the sources it must find.
NAMED = [
    ("Report_2024.pdf", "Annual report"),
    ("report-2023.pdf", "Quarterly: 100% of figures"),
    ("notes.txt", None),
    ("ÉTÉ.md", "Résumé de l'ÉTÉ"),
    ("a_b.txt", "underscore"),
    ("axb.txt", "plain"),
    ("50%.txt", "percent"),
    ("50x.txt", "plain"),
    ("back\\slash.txt", "backslash"),
    ("ΣΟΦΙΑ.txt", "Greek"),
]
MATCHES = {
    "REPORT": ["Report_2024.pdf", "report-2023.pdf"],  # source, any case
    "quarterly": ["report-2023.pdf"],  # title only
    "a_b": ["a_b.txt"],  # "_" is no wildcard: axb.txt does not match
    "50%": ["50%.txt"],  # "%" is no wildcard: 50x.txt does not match
    "%": ["50%.txt", "report-2023.pdf"],
    "\\": ["back\\slash.txt"],
    "été": ["ÉTÉ.md"],  # non-ASCII letters fold too
    "RÉSUMÉ": ["ÉTÉ.md"],
    "σοφια": ["ΣΟΦΙΑ.txt"],
    "no such name": [],
}


@pytest.fixture
def named_store(store: Store) -> Store:
    """The collection holds ``NAMED``; tenant T2's collection of the same name holds a
    report of its own."""
    for source, title in NAMED:
        record, chunks, vectors = make_doc(source, [f"text of {source}"])
        put(store, (replace(record, title=title), chunks, vectors))
    store.ensure_collection(T2, COL)
    put(store, make_doc("report-of-t2.pdf", ["other tenant"]), T2)
    return store


@pytest.mark.parametrize(("query", "expected"), MATCHES.items(), ids=list(MATCHES))
def test_list_documents_matches_source_or_title_literally_ignoring_case(
    named_store: Store, query: str, expected: list[str]
) -> None:
    """``match`` keeps the tenant's documents whose source or title holds it as a plain
    substring in any case, in source order, and count_documents counts exactly those."""
    found = named_store.list_documents(T1, COL, match=query)
    assert sorted(expected) == [d.source for d in found]
    assert len(expected) == named_store.count_documents(T1, COL, match=query)


def test_matching_documents_page_like_the_rest(named_store: Store) -> None:
    """limit and offset page through the matches; without a match every document counts; a
    NUL character (which PostgreSQL text cannot hold) matches nothing."""
    pages = [named_store.list_documents(T1, COL, match=".TXT", limit=3, offset=o) for o in (0, 3)]
    assert [[d.source for d in page] for page in pages] == [
        ["50%.txt", "50x.txt", "a_b.txt"],
        ["axb.txt", "back\\slash.txt", "notes.txt"],
    ]
    assert named_store.count_documents(T1, COL, match=".txt") == 7
    assert len(NAMED) == named_store.count_documents(T1, COL)
    assert named_store.count_documents(T2, COL) == 1
    assert (
        named_store.list_documents(T1, COL, match="notes\x00"),
        named_store.count_documents(T1, COL, match="notes\x00"),
    ) == ([], 0)


def test_document_chunks_come_in_ordinal_order_and_by_page(store: Store) -> None:
    """document_chunks gives the document's chunks by ordinal however they were written, only
    one page's when asked, and raises DocumentNotFound for an unknown document."""
    record, chunks, vectors = make_doc("a.txt", ["zero", "one", "two", "three"], pages=[1, 2, 2, 4])
    put(store, (record, chunks[::-1], vectors[::-1]))
    put(store, make_doc("b.txt", ["another document"], pages=[2]))
    assert chunks == store.document_chunks(T1, COL, record.id)
    assert chunks[1:3] == store.document_chunks(T1, COL, record.id, page=2)
    assert store.document_chunks(T1, COL, record.id, page=3) == []
    with pytest.raises(DocumentNotFound):
        store.document_chunks(T1, COL, "doc-unknown", page=1)


def test_existing_vectors_are_keyed_by_text_sha256(store: Store) -> None:
    """existing_vectors maps sha256(chunk text) to that chunk's stored vector."""
    doc = make_doc("a.txt", ["first chunk", "second chunk"])
    put(store, doc)
    got = store.existing_vectors(T1, COL, doc[0].id)
    expected = {
        hashlib.sha256(t.encode()).hexdigest(): vector_for(t)
        for t in ["first chunk", "second chunk"]
    }
    assert sorted(got) == sorted(expected)
    for key, row in expected.items():
        np.testing.assert_array_equal(row, got[key])
    assert store.existing_vectors(T1, COL, "unknown") == {}


def test_get_chunks_and_vectors_follow_the_requested_order(store: Store) -> None:
    """get_chunks keeps the asked order and skips missing ids; chunk_vectors rows align."""
    doc = make_doc("a.txt", ["zero", "one", "two"], pages=[1, 2, 2])
    put(store, doc)
    ids = [doc[1][2].id, "missing", doc[1][0].id]
    assert store.get_chunks(T1, COL, ids) == [doc[1][2], doc[1][0]]
    rows = store.chunk_vectors(T1, COL, [doc[1][2].id, doc[1][0].id])
    np.testing.assert_array_equal(np.stack([doc[2][2], doc[2][0]]), rows)
    assert store.chunk_vectors(T1, COL, []).shape[0] == 0
    with pytest.raises(NotFoundError):
        store.chunk_vectors(T1, COL, ["missing"])


# -- search ---------------------------------------------------------------------------------


def test_dense_search_ranks_by_cosine_and_carries_the_document(store: Store) -> None:
    """The exact vector of a chunk finds that chunk first with score 1, hits carry doc info."""
    docs = [make_doc(f"d{i}.txt", [f"chunk {i} {j}" for j in range(5)]) for i in range(6)]
    for doc in docs:
        put(store, doc)
    target = docs[3][1][2]
    hits = store.dense_search(T1, COL, vector_for(target.text).reshape(1, -1), limit=4)
    assert len(hits) == 4
    assert hits[0].chunk == target
    assert (hits[0].document_source, hits[0].document_title) == ("d3.txt", "Title of d3.txt")
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    all_rows = np.concatenate([d[2] for d in docs])
    assert hits[1].score == pytest.approx(np.sort(all_rows @ vector_for(target.text))[-2], abs=1e-5)


def test_dense_search_rejects_a_vector_of_another_width(store: Store) -> None:
    """A query vector of the wrong dimension is an InvalidQuery, not a crash."""
    put(store, make_doc("a.txt", ["text"]))
    with pytest.raises(InvalidQuery):
        store.dense_search(T1, COL, vector_for("q", DIM + 1), limit=3)


BM25_CORPUS = {
    "mito.txt": "The mitochondria produce energy for the cell through respiration.",
    "cell1.txt": "The cell membrane controls what enters and leaves the cell.",
    "cell2.txt": "Each cell contains a nucleus with genetic material.",
    "cell3.txt": "Plant cell walls are made of cellulose.",
    "cell4.txt": "Cell division happens through mitosis and meiosis.",
    "river.txt": "The river flows through the valley toward the sea.",
    "moon.txt": "The moon orbits the earth roughly every twenty-seven days.",
    "bread.txt": "Bread rises because yeast produces carbon dioxide.",
}


def test_keyword_search_ranks_rarer_matching_terms_higher(store: Store) -> None:
    """BM25: the document matching the rare term outranks those matching only a common one."""
    for source, text in BM25_CORPUS.items():
        put(store, make_doc(source, [text]))
    hits = store.keyword_search(T1, COL, "cells and mitochondria", limit=10)
    assert hits[0].document_source == "mito.txt"
    assert set(sources(hits)) == {"mito.txt", "cell1.txt", "cell2.txt", "cell3.txt", "cell4.txt"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.score > 0 for h in hits)
    assert sources(store.keyword_search(T1, COL, "Valley", limit=3)) == ["river.txt"]


def test_keyword_search_handles_empty_and_odd_queries(store: Store) -> None:
    """Stopword-only, empty and punctuation-laden queries return hits or nothing, never errors."""
    put(store, make_doc("a.txt", ['He said "quote" OR NOT (near) x_y café*']))
    assert store.keyword_search(T1, COL, "", limit=5) == []
    assert store.keyword_search(T1, COL, "the and of", limit=5) == []
    for query in ['"quote"', "OR NOT", "NEAR(", "x_y", "café*", "^-:*"]:
        store.keyword_search(T1, COL, query, limit=5)
    assert sources(store.keyword_search(T1, COL, 'quote" OR "x', limit=5)) == ["a.txt"]
    assert sources(store.keyword_search(T1, COL, "CAFÉ", limit=5)) == ["a.txt"]


FILTER_DOCS = [
    ("a.txt", {"lang": "en", "year": 2019, "draft": False}, [1, 2], "text/plain"),
    ("b.md", {"lang": "de", "year": 2021, "draft": True}, [1], "text/markdown"),
    ("c.pdf", {"lang": "en", "year": 2023, "tags": ["x"]}, [3, 4], "application/pdf"),
    ("d.txt", {"year": "2024"}, [1], "text/plain"),
]
FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"lang": "en"}, {"a.txt", "c.pdf"}),
    ({"lang": {"$ne": "en"}}, {"b.md", "d.txt"}),
    ({"lang": {"$in": ["de", "fr"]}}, {"b.md"}),
    ({"lang": {"$nin": ["de"]}}, {"a.txt", "c.pdf", "d.txt"}),
    ({"year": {"$gte": 2021}}, {"b.md", "c.pdf"}),
    ({"year": {"$gt": 2019, "$lt": 2023}}, {"b.md"}),
    ({"year": {"$gte": "2000"}}, {"d.txt"}),
    ({"draft": True}, {"b.md"}),
    ({"tags": "x"}, set()),
    ({"source": "c.pdf"}, {"c.pdf"}),
    ({"source": {"$in": ["a.txt", "d.txt"]}, "lang": "en"}, {"a.txt"}),
    ({"mime_type": "text/plain"}, {"a.txt", "d.txt"}),
    ({"page": {"$gte": 3}}, {"c.pdf"}),
    ({"page": 2, "lang": "en"}, {"a.txt"}),
    ({"missing": {"$lt": 5}}, set()),
]


@pytest.fixture
def filter_store(store: Store) -> Store:
    for source, metadata, pages, mime in FILTER_DOCS:
        texts = [f"common words in {source} part {p}" for p in pages]
        put(store, make_doc(source, texts, metadata=metadata, pages=pages, mime_type=mime))
    return store


@pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
def test_filters_restrict_dense_and_keyword_search(
    filter_store: Store, raw: dict[str, Any], expected: set[str]
) -> None:
    """Both searches return exactly the chunks whose document (or page) matches the filter."""
    filters = parse_filter(raw)
    dense = filter_store.dense_search(T1, COL, vector_for("q"), limit=20, filters=filters)
    keyword = filter_store.keyword_search(T1, COL, "common words", limit=20, filters=filters)
    assert expected == set(sources(dense))
    assert expected == set(sources(keyword))
    assert sorted(h.chunk.id for h in dense) == sorted(h.chunk.id for h in keyword)
    if "page" in raw:
        assert all(h.chunk.page >= 2 for h in dense)


def test_document_id_filter(filter_store: Store) -> None:
    """The builtin document_id field filters by the stored document id."""
    doc_id = make_doc("c.pdf", [])[0].id
    filters = parse_filter({"document_id": doc_id})
    hits = filter_store.dense_search(T1, COL, vector_for("q"), limit=20, filters=filters)
    assert {h.chunk.document_id for h in hits} == {doc_id}


# -- isolation ------------------------------------------------------------------------------


def test_tenants_never_see_each_other(store: Store) -> None:
    """Two tenants with the same collection name share nothing: reads, searches and deletes."""
    store.ensure_collection(T2, COL)
    mine = make_doc("mine.txt", ["secret alpha plans"], metadata={"k": 1})
    theirs = make_doc("theirs.txt", ["secret beta plans"], metadata={"k": 1})
    put(store, mine, T1)
    put(store, theirs, T2)
    every = parse_filter({"k": 1})
    for tenant, own, other in [(T1, mine, theirs), (T2, theirs, mine)]:
        assert sources(store.keyword_search(tenant, COL, "secret plans", limit=9)) == [
            own[0].source
        ]
        assert sources(store.dense_search(tenant, COL, other[2][0], limit=9, filters=every)) == [
            own[0].source
        ]
        assert [d.source for d in store.list_documents(tenant, COL)] == [own[0].source]
        assert store.find_document(tenant, COL, other[0].source) is None
        assert store.get_chunks(tenant, COL, [other[1][0].id]) == []
        assert [d.source for d in store.list_documents(tenant, COL, match="plans")] == []
        assert store.count_documents(tenant, COL, match=other[0].source) == 0
        with pytest.raises(DocumentNotFound):
            store.document_chunks(tenant, COL, other[0].id)
        assert store.existing_vectors(tenant, COL, other[0].id) == {}
        with pytest.raises(NotFoundError):
            store.chunk_vectors(tenant, COL, [other[1][0].id])
        with pytest.raises(DocumentNotFound):
            store.delete_document(tenant, COL, other[0].id)
    assert [c.tenant for c in store.list_collections(T2)] == [T2]
    with pytest.raises(CollectionNotFound):
        store.get_collection("tenant-c", COL)
    store.delete_collection(T1, COL)
    assert store.get_collection(T2, COL).document_count == 1
    assert sources(store.keyword_search(T2, COL, "secret", limit=9)) == ["theirs.txt"]


# -- concurrency ----------------------------------------------------------------------------


def test_second_instance_sees_writes_without_restart(store_factory: Callable[[], Store]) -> None:
    """Instance B's searches, dense and keyword, follow instance A's adds, replacements and
    deletes: a word only in removed text is no longer found."""
    a, b = store_factory(), store_factory()
    a.ensure_collection(T1, COL)
    put(a, make_doc("one.txt", ["first words"]))
    query = vector_for("second words")
    assert sources(b.dense_search(T1, COL, query, limit=5)) == ["one.txt"]
    assert sources(b.keyword_search(T1, COL, "words", limit=5)) == ["one.txt"]
    two = make_doc("two.txt", ["second words"])
    put(a, two)
    assert b.dense_search(T1, COL, query, limit=1)[0].chunk.id == two[1][0].id
    assert sources(b.keyword_search(T1, COL, "second", limit=5)) == ["two.txt"]
    put(a, make_doc("two.txt", ["replaced words"]))
    assert b.dense_search(T1, COL, query, limit=5)[0].chunk.text in {
        "first words",
        "replaced words",
    }
    assert b.keyword_search(T1, COL, "second", limit=5) == []
    assert sources(b.keyword_search(T1, COL, "replaced", limit=5)) == ["two.txt"]
    assert b.get_collection(T1, COL) == a.get_collection(T1, COL)
    a.delete_document(T1, COL, two[0].id)
    assert sources(b.dense_search(T1, COL, query, limit=5)) == ["one.txt"]
    assert b.keyword_search(T1, COL, "replaced", limit=5) == []
    assert sources(b.keyword_search(T1, COL, "words", limit=5)) == ["one.txt"]
    put(b, make_doc("three.txt", ["third words"]))
    assert sorted(sources(a.dense_search(T1, COL, query, limit=5))) == ["one.txt", "three.txt"]
    assert sorted(sources(a.keyword_search(T1, COL, "words", limit=5))) == [
        "one.txt",
        "three.txt",
    ]


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    from ragserve.config import StoreSettings
    from ragserve.store import open_store
    from ragserve.types import Chunk, DocumentRecord

    url, tenant, collection, source, text = sys.argv[1:6]
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    row = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    vectors = (row / np.linalg.norm(row)).reshape(1, -1)
    record = DocumentRecord(source, source, None, "text/plain", text, "p")
    chunk = Chunk(source + "-0", source, 0, text, 1, 0, len(text), 1)
    store = open_store(StoreSettings(url=url))
    store.put_document(tenant, collection, record, [chunk], vectors)
    store.close()
    """
)


def test_another_process_writes_are_seen(store: Store, store_url: str) -> None:
    """A document written by a separate process appears in this process's dense search."""
    put(store, make_doc("local.txt", ["local text"]))
    assert sources(store.dense_search(T1, COL, vector_for("remote text"), limit=5)) == ["local.txt"]
    args = [sys.executable, "-c", WRITER, store_url, T1, COL, "remote.txt", "remote text"]
    subprocess.run(args, check=True, timeout=60)
    hits = store.dense_search(T1, COL, vector_for("remote text"), limit=5)
    assert sources(hits)[0] == "remote.txt"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert sources(store.keyword_search(T1, COL, "remote", limit=5)) == ["remote.txt"]


SAME_PUTS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ragserve.config import StoreSettings
    from ragserve.store import open_store
    from ragserve.types import Chunk, DocumentRecord

    url, tenant, collection, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = open_store(StoreSettings(url=url, busy_timeout_ms=30000))
    statuses = []
    for i in range(count):
        source, text = f"same-{i}.txt", f"identical words {i}"
        record = DocumentRecord(source, source, None, "text/plain", text, "p")
        chunk = Chunk(source + "-0", source, 0, text, 1, 0, len(text), 1)
        vector = np.zeros((1, 16), dtype=np.float32)
        vector[0, i % 16] = 1.0
        statuses.append(store.put_document(tenant, collection, record, [chunk], vector))
    store.close()
    print(json.dumps(statuses))
    """
)


def test_identical_puts_from_two_processes_store_each_document_once(
    store: Store, store_url: str
) -> None:
    """Two processes putting the same documents at once: each is added by one and unchanged
    for the other, and the collection holds one copy of each."""
    count = 15
    args = [sys.executable, "-c", SAME_PUTS, store_url, T1, COL, str(count)]
    writers = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    first, second = (json.loads(output) for output in outputs)
    assert [sorted(pair) for pair in zip(first, second, strict=True)] == [
        ["added", "unchanged"]
    ] * count
    info = store.get_collection(T1, COL)
    assert (info.document_count, info.chunk_count) == (count, count)
    assert len(store.keyword_search(T1, COL, "identical words", limit=100)) == count


def test_searches_run_while_a_thread_writes(store: Store) -> None:
    """Reader threads searching during concurrent writes see no errors and consistent hits."""
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(40):
                put(store, make_doc(f"w{i % 25}.txt", [f"writer text {i} alpha", f"more {i}"]))
                if i % 7 == 6:
                    store.delete_document(T1, COL, make_doc(f"w{i % 25}.txt", [])[0].id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read(seed: int) -> None:
        try:
            while not done.is_set():
                for hit in store.dense_search(T1, COL, vector_for(str(seed)), limit=5):
                    assert hit.document_source.startswith("w")
                for hit in store.keyword_search(T1, COL, "alpha writer", limit=5):
                    assert "alpha" in hit.chunk.text
                store.get_collection(T1, COL)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(i,)) for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    info = store.get_collection(T1, COL)
    stored = store.list_documents(T1, COL, limit=1000)
    assert info.document_count == len(stored)
    assert info.chunk_count == sum(d.chunk_count for d in stored)
    assert len(store.dense_search(T1, COL, vector_for("q"), limit=1000)) == info.chunk_count
