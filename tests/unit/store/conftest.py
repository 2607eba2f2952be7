"""Fixtures for the embedded store's unit tests: a real SQLite file and document factories."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragserve.store.lexical import K1, B
from ragserve.store.sqlite import SqliteStore
from ragserve.types import Chunk, DocumentRecord, Matrix

DIM = 8
Doc = tuple[DocumentRecord, list[Chunk], Matrix]


def _vector_for(text: str, dim: int = DIM) -> Matrix:
    """A unit vector determined by the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    row = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return row / np.linalg.norm(row)


def _make_doc(source: str, texts: Sequence[str], metadata: dict[str, Any] | None = None) -> Doc:
    doc_id = "doc-" + hashlib.sha256(source.encode()).hexdigest()[:12]
    record = DocumentRecord(
        id=doc_id,
        source=source,
        title=source,
        mime_type="text/plain",
        content_hash=hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
        pipeline_hash="p",
        metadata=metadata or {},
    )
    chunks = [Chunk(f"{doc_id}-{i}", doc_id, i, t, 1, 0, len(t), 1) for i, t in enumerate(texts)]
    vectors = np.stack([_vector_for(t) for t in texts]) if texts else np.zeros((0, DIM))
    return record, chunks, vectors.astype(np.float32)


def _reference_bm25(chunks: Mapping[int, Sequence[str]], query: Sequence[str]) -> dict[int, float]:
    """Lucene BM25 of every chunk (key -> terms) that matches, computed the plain way: every
    query term occurrence counts; chunks without terms are not counted."""
    docs = {key: terms for key, terms in chunks.items() if terms}
    average = sum(len(t) for t in docs.values()) / len(docs) if docs else 1.0
    scores = {}
    for key, terms in docs.items():
        tf = Counter(terms)
        score = 0.0
        for term in query:
            if term in tf:
                n = sum(1 for other in docs.values() if term in other)
                idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
                norm = K1 * (1 - B + B * len(terms) / average)
                score += idf * tf[term] * (K1 + 1) / (tf[term] + norm)
        if score > 0:
            scores[key] = score
    return scores


@pytest.fixture(name="reference_bm25")
def reference_bm25_fixture() -> Callable[..., dict[int, float]]:
    """``reference_bm25(chunks, query)``: BM25 by the textbook formula, for comparisons."""
    return _reference_bm25


@pytest.fixture(name="vector_for")
def vector_for_fixture() -> Callable[..., Matrix]:
    """``vector_for(text)``: a unit vector determined by the text."""
    return _vector_for


@pytest.fixture(name="make_doc")
def make_doc_fixture() -> Callable[..., Doc]:
    """``make_doc(source, texts, metadata=None)``: a document, its chunks and their vectors."""
    return _make_doc


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "store.db"


@pytest.fixture
def open_sqlite(db_path: Path) -> Iterator[Callable[[], SqliteStore]]:
    """Opens SqliteStore instances on one file; all are closed after the test."""
    opened: list[SqliteStore] = []

    def open_one() -> SqliteStore:
        store = SqliteStore(db_path, busy_timeout_ms=10_000)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def sqlite_store(open_sqlite: Callable[[], SqliteStore]) -> SqliteStore:
    store = open_sqlite()
    store.ensure_collection("t", "c")
    return store
