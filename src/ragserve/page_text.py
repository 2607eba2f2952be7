"""The text of one page of a stored document, with its chunks' places on it, for opening a
citation where it stands.

The page is extracted again from the stored original by the loader ingestion used, and used
only when the original is what was indexed (its SHA-256 is the document's ``content_hash``)
and every chunk of the page is found at its offsets: the text is then ``exact``. Otherwise (no
original kept, a password-protected PDF, a loader that now extracts differently) the page is
rebuilt from its chunks, each at its offsets, the gaps filled with spaces. The extractions of
the last few documents opened are kept, so paging through a PDF parses it once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import structlog

from ragserve.blobs import BlobStore
from ragserve.errors import BackendError, DocumentNotFound, InputError, PageNotFound
from ragserve.ingest.loaders import load_bytes
from ragserve.ingest.sniff import TEXT
from ragserve.store.base import Store
from ragserve.types import Chunk, DocumentRecord

DOCUMENTS_KEPT = 16
"""Documents whose extracted pages are kept (least recently opened dropped first)."""

Extractions = tuple[tuple[str, ...], ...]
"""Page texts of each way ingestion may have extracted the original, most likely first."""
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PageView:
    """One page: its text, whether that is the extracted text itself (``exact``) or rebuilt
    from the chunks, and the page's chunks in ordinal order (``text[start:end]`` is each
    chunk's text either way)."""

    document: DocumentRecord
    number: int
    text: str
    exact: bool
    chunks: tuple[Chunk, ...]


class PageTexts:
    """Pages of a store's documents, from the originals in ``blobs`` when they are kept."""

    def __init__(self, store: Store, blobs: BlobStore, *, capacity: int = DOCUMENTS_KEPT) -> None:
        self.store = store
        self.blobs = blobs
        self.capacity = capacity
        self._extracted: OrderedDict[tuple[str, str], Extractions] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, tenant: str, collection: str, document_id: str, number: int) -> PageView:
        """Raises ``DocumentNotFound``, or ``PageNotFound`` outside ``1..page_count``."""
        document = self.store.get_document(tenant, collection, document_id)
        if not 1 <= number <= document.page_count:
            raise PageNotFound(
                f"document {document_id!r} has pages 1 to {document.page_count}; "
                f"there is no page {number}"
            )
        chunks = self.store.document_chunks(tenant, collection, document_id, page=number)
        for pages in self._extractions(document):
            if number <= len(pages) and _places_every_chunk(pages[number - 1], chunks):
                return PageView(document, number, pages[number - 1], True, tuple(chunks))
        return PageView(document, number, rebuild(chunks), False, tuple(chunks))

    def _extractions(self, document: DocumentRecord) -> Extractions:
        key = (document.id, document.content_hash)
        with self._lock:
            if key in self._extracted:
                self._extracted.move_to_end(key)
                return self._extracted[key]
        try:
            found = extract(document, self.blobs.get(document.id))
        except DocumentNotFound:  # no original kept (files ingested by path, text without it)
            found = ()
        except BackendError as exc:  # not remembered: the storage may answer next time
            _log.warning("original_unavailable", document_id=document.id, error=str(exc))
            return ()
        with self._lock:
            self._extracted[key] = found
            while len(self._extracted) > self.capacity:
                self._extracted.popitem(last=False)
        return found


def extract(document: DocumentRecord, data: bytes) -> Extractions:
    """The pages ingestion may have extracted from ``data``: the loader's (uploads), and for
    plain text also the text stripped (documents given as text); none when ``data`` is not the
    indexed content."""
    if hashlib.sha256(data).hexdigest() != document.content_hash:
        return ()
    found: list[tuple[str, ...]] = []
    with suppress(InputError):  # encrypted (the password is never kept), or unreadable by now
        found.append(tuple(p.text for p in load_bytes(data, Path(document.source).name).pages))
    if document.mime_type == TEXT and document.page_count == 1:
        with suppress(UnicodeDecodeError):
            found.append((data.decode("utf-8").strip(),))
    return tuple(found)


def rebuild(chunks: Sequence[Chunk]) -> str:
    """A page's text from its chunks alone: each chunk's text at its offsets, spaces between."""
    characters = [" "] * max((c.start + len(c.text) for c in chunks), default=0)
    for chunk in chunks:
        characters[chunk.start : chunk.start + len(chunk.text)] = chunk.text
    return "".join(characters)


def _places_every_chunk(text: str, chunks: Sequence[Chunk]) -> bool:
    return all(text[c.start : c.end] == c.text for c in chunks)
