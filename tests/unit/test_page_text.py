"""Page texts for citations, on a real SQLite store and real blobs on disk: exact when the
stored original extracts as indexed, rebuilt from the chunks otherwise, extractions kept for
the last few documents opened."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ragserve.blobs import BlobStore
from ragserve.errors import DocumentNotFound, PageNotFound
from ragserve.page_text import PageTexts, rebuild
from ragserve.store.sqlite import SqliteStore
from ragserve.types import Chunk, DocumentRecord

T, C = "tenant", "docs"
# A text document's page is its text stripped, double spaces and all (the loader would
# collapse them: its extraction does not place the chunks, the stripped text does).
TEXT = "  Alpha  beta gamma. Delta epsilon.\n\nZeta eta theta.\n"
PAGE = TEXT.strip()
PIECES = ["Alpha  beta gamma. Delta epsilon.", "Zeta eta theta."]
PARSED = "Tide tables\n\nThe high tide comes at dawn."
"""What the Markdown loader extracts from the tide table below."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "ragserve.db")
    store.ensure_collection(T, C)
    yield store
    store.close()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore((tmp_path / "blobs").as_uri())


def chunks_of(document_id: str, page_text: str, pieces: list[str], page: int = 1) -> list[Chunk]:
    """Chunks of the pieces where they stand in the page's text."""
    found = []
    for ordinal, piece in enumerate(pieces):
        start = page_text.index(piece)
        end = start + len(piece)
        found.append(Chunk(f"{document_id}-{ordinal}", document_id, ordinal, piece, page, start,
                           end, len(piece.split())))  # fmt: skip
    return found


def put(
    store: SqliteStore,
    data: bytes,
    page_text: str,
    pieces: list[str],
    *,
    source: str = "notes",
    mime_type: str = "text/plain",
) -> DocumentRecord:
    """Store a one-page document whose original is ``data`` (its content hash), chunked into
    ``pieces`` where they stand in ``page_text``."""
    document_id = hashlib.sha256(source.encode()).hexdigest()[:32]
    chunks = chunks_of(document_id, page_text, pieces)
    record = DocumentRecord(
        id=document_id,
        source=source,
        title=None,
        mime_type=mime_type,
        content_hash=hashlib.sha256(data).hexdigest(),
        pipeline_hash="p",
        chunk_count=len(chunks),
    )
    store.put_document(T, C, record, chunks, np.eye(len(chunks), 4, dtype=np.float32))
    return record


def text_document(store: SqliteStore, source: str = "notes") -> DocumentRecord:
    return put(store, TEXT.encode(), PAGE, PIECES, source=source)


def test_a_kept_original_gives_the_exact_page(store: SqliteStore, blobs: BlobStore) -> None:
    """With the original stored, the page is the indexed text and each passage is its chunk."""
    record = text_document(store)
    blobs.put(record.id, TEXT.encode())
    view = PageTexts(store, blobs).page(T, C, record.id, 1)
    assert (view.exact, view.text) == (True, PAGE)
    assert [view.text[c.start : c.end] for c in view.chunks] == PIECES


def test_without_an_original_the_page_is_rebuilt(store: SqliteStore, blobs: BlobStore) -> None:
    """No original: the chunks at their offsets, the paragraph break between them spaces."""
    record = text_document(store)
    view = PageTexts(store, blobs).page(T, C, record.id, 1)
    assert (view.exact, view.text) == (False, "Alpha  beta gamma. Delta epsilon.  Zeta eta theta.")
    assert [view.text[c.start : c.end] for c in view.chunks] == PIECES


def test_an_original_that_is_not_the_indexed_content_is_not_used(
    store: SqliteStore, blobs: BlobStore
) -> None:
    """Bytes whose hash is not the document's content hash (a later upload that failed to
    index) are never shown as the page."""
    record = text_document(store)
    blobs.put(record.id, TEXT.replace("Zeta", "Omega").encode())
    assert PageTexts(store, blobs).page(T, C, record.id, 1).exact is False


def test_an_original_that_now_extracts_differently_is_rebuilt(
    store: SqliteStore, blobs: BlobStore
) -> None:
    """Markdown indexed from its raw text (not as the loader extracts it) is rebuilt; indexed
    as the loader extracts it, it is exact."""
    data = b"# Tide tables\n\nThe *high* tide comes at dawn.\n"
    markdown = {"mime_type": "text/markdown"}
    raw = put(store, data, data.decode(), ["The *high* tide"], source="raw.md", **markdown)
    parsed = put(store, data, PARSED, ["The high tide"], source="parsed.md", **markdown)
    for record in (raw, parsed):
        blobs.put(record.id, data)
    pages = PageTexts(store, blobs)
    assert pages.page(T, C, raw.id, 1).exact is False
    view = pages.page(T, C, parsed.id, 1)
    assert (view.exact, view.text) == (True, PARSED)


def test_pages_outside_the_document_and_unknown_documents_raise(
    store: SqliteStore, blobs: BlobStore
) -> None:
    """Page 0, a page past page_count and an unknown document are not found."""
    record = text_document(store)
    pages = PageTexts(store, blobs)
    for number in (0, -1, 2):
        with pytest.raises(PageNotFound):
            pages.page(T, C, record.id, number)
    with pytest.raises(DocumentNotFound):
        pages.page(T, C, "0" * 32, 1)


def test_extractions_are_kept_for_the_most_recently_opened_documents(
    store: SqliteStore, blobs: BlobStore
) -> None:
    """Once opened, a document's page stays exact with its original gone; the least recently
    opened beyond the capacity is dropped and extracted again (now: rebuilt)."""
    first, second, third = (text_document(store, name) for name in ("a", "b", "c"))
    for record in (first, second, third):
        blobs.put(record.id, TEXT.encode())
    pages = PageTexts(store, blobs, capacity=2)
    for record in (first, second, first, third):  # second is now the least recent
        assert pages.page(T, C, record.id, 1).exact is True
    for record in (first, second, third):
        blobs.delete(record.id)
    exact = {r.source: pages.page(T, C, r.id, 1).exact for r in (first, third, second)}
    assert exact == {"a": True, "c": True, "b": False}


def test_rebuild_places_overlapping_chunks_and_fills_gaps() -> None:
    """Overlapping chunks agree where they overlap; uncovered characters become spaces."""
    text = "one two three four five"
    chunks = chunks_of("d", text, ["two three", "three four", "five"])
    assert rebuild(chunks) == "    two three four five"
    assert rebuild([]) == ""
