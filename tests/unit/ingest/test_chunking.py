"""Token-aware chunking with the real all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ragserve.embed.tokenizer import WordPieceTokenizer
from ragserve.ingest import Chunker, load_path
from ragserve.ingest.chunking import chunk_id, sentence_starts
from ragserve.types import Chunk, ExtractedDocument, Page

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
SCIFACT = SHARED_DATA / "scifact"
TOKENIZER = WordPieceTokenizer.minilm()


def _doc(*pages: str) -> ExtractedDocument:
    return ExtractedDocument(
        tuple(Page(number, text) for number, text in enumerate(pages, start=1)), "text/plain"
    )


def _texts(chunks: list[Chunk]) -> list[str]:
    return [chunk.text for chunk in chunks]


def _assert_invariants(chunker: Chunker, doc: ExtractedDocument, chunks: list[Chunk]) -> None:
    """Offsets map back, sizes are bounded, pages are covered in order, overlap is bounded."""
    assert list(range(len(chunks))) == [chunk.ordinal for chunk in chunks]
    for chunk in chunks:
        page = doc.pages[chunk.page - 1]
        tokens = TOKENIZER.count(chunk.text)
        assert (chunk.text, chunk.text.strip(), True) == (
            page.text[chunk.start : chunk.end],
            chunk.text,
            0 < tokens == chunk.token_count <= chunker.size,
        )
    for page in doc.pages:
        spans = [(c.start, c.end) for c in chunks if c.page == page.number]
        covered = {i for start, end in spans for i in range(start, end)}
        visible = {i for i, char in enumerate(page.text) if not char.isspace()}
        expected: tuple[set[int], bool, bool] = (set(), True, True)
        assert expected == (
            visible - covered,
            all(a[0] < b[0] for a, b in itertools.pairwise(spans)),
            all(a[1] < b[1] for a, b in itertools.pairwise(spans)),
        )
        starts = [start for start, _ in TOKENIZER.offsets(page.text)]
        for (_, previous_end), (start, _) in itertools.pairwise(spans):
            shared = sum(1 for s in starts if start <= s < previous_end)
            assert shared <= chunker.overlap


def test_short_text_is_one_chunk_with_exact_offsets() -> None:
    """Text under the size is one chunk, stripped by moving offsets, with a deterministic id."""
    page = "  \n Hello world. This is short.\n\n"
    chunks = Chunker(TOKENIZER, 50, 10).chunk("doc-1", _doc(page), {"source": "a.txt"})
    text = "Hello world. This is short."
    expected = Chunk(
        id=hashlib.sha256(f"doc-1\x000\x00{text}".encode()).hexdigest()[:32],
        document_id="doc-1",
        ordinal=0,
        text=text,
        page=1,
        start=4,
        end=31,
        token_count=7,
        metadata={"source": "a.txt"},
    )
    assert [expected] == chunks


def test_whole_paragraphs_are_packed_greedily() -> None:
    """Paragraphs that fit together share a chunk; the next paragraph starts a new one."""
    paragraphs = ["alpha " * 10, "beta " * 10, "gamma " * 10]
    page = "\n\n".join(p.strip() for p in paragraphs)
    chunks = Chunker(TOKENIZER, 25, 0).chunk("d", _doc(page))
    assert [f"{paragraphs[0].strip()}\n\n{paragraphs[1].strip()}", paragraphs[2].strip()] == (
        _texts(chunks)
    )


def test_long_paragraph_splits_at_sentences_with_whole_sentence_overlap() -> None:
    """Sentences are never cut when they fit; the overlap repeats trailing whole sentences."""
    sentences = [f"Sentence number {word} has exactly eight tokens." for word in "abcdef"]
    chunks = Chunker(TOKENIZER, 20, 9).chunk("d", _doc(" ".join(sentences)))
    expected = [
        " ".join(sentences[0:2]),
        " ".join(sentences[1:3]),
        " ".join(sentences[2:4]),
        " ".join(sentences[3:5]),
        " ".join(sentences[4:6]),
    ]
    assert expected == _texts(chunks)


def test_overlong_sentence_splits_at_words_and_overlong_word_at_tokens() -> None:
    """A sentence over the size is cut between words; a single over-long word at tokens."""
    blob = "qzxv" * 20  # 80 single-letter word pieces (under WordPiece's 100-character limit)
    chunker = Chunker(TOKENIZER, 16, 0)
    doc = _doc(" ".join(["word"] * 30) + ".\n\n" + blob)
    chunks = chunker.chunk("d", doc)
    _assert_invariants(chunker, doc, chunks)
    assert (" ".join(["word"] * 16), " ".join(["word"] * 14) + ".", blob, 7) == (
        chunks[0].text,
        chunks[1].text,
        "".join(_texts(chunks[2:])),
        len(chunks),
    )


def test_chunks_never_cross_pages_and_ordinals_run_across_the_document() -> None:
    """Each page is chunked on its own; empty pages give no chunks; ordinals continue."""
    doc = _doc("First page text.", "   ", "Second page. It has two sentences.")
    chunks = Chunker(TOKENIZER, 50, 5).chunk("d", doc)
    expected = [(0, 1, "First page text."), (1, 3, "Second page. It has two sentences.")]
    assert expected == [(chunk.ordinal, chunk.page, chunk.text) for chunk in chunks]


def test_chunking_is_deterministic_and_ids_depend_on_the_document() -> None:
    """Same input gives identical chunks; another document id gives other chunk ids."""
    doc = _doc(" ".join(f"Sentence {i} is here." for i in range(60)))
    chunker = Chunker(TOKENIZER, 32, 8)
    first, second, other = (chunker.chunk(d, doc) for d in ("a", "a", "b"))
    assert (first, True) == (
        second,
        {c.id for c in first}.isdisjoint(c.id for c in other),
    )


def test_chunk_id_is_sha256_of_document_ordinal_and_text() -> None:
    """The id is the first 32 hex digits of sha256 over id, ordinal and text, NUL-separated."""
    assert hashlib.sha256(b"doc\x003\x00some text").hexdigest()[:32] == chunk_id(
        "doc", 3, "some text"
    )


def test_metadata_is_copied_per_chunk() -> None:
    """Chunks get their own copy of the metadata, so one cannot change another's."""
    metadata = {"tag": "x"}
    chunks = Chunker(TOKENIZER, 8, 0).chunk("d", _doc("one two three. " * 10), metadata)
    chunks[0].metadata["tag"] = "changed"
    assert ["x"] * (len(chunks) - 1) + [{"tag": "x"}] == [c.metadata["tag"] for c in chunks[1:]] + [
        metadata
    ]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1), (10, 20)])
def test_invalid_sizes_are_refused(size: int, overlap: int) -> None:
    """Size must be positive and overlap within [0, size)."""
    with pytest.raises(ValueError, match="chunk"):
        Chunker(TOKENIZER, size, overlap)


def test_fingerprint_names_the_configuration() -> None:
    """The fingerprint changes with size and overlap, for pipeline hashes."""
    expected = "chunker-v1:size=200:overlap=32"
    assert expected == Chunker(TOKENIZER, 200, 32).fingerprint


def test_sentence_starts_skip_abbreviations_and_decimals() -> None:
    """Splits after . ! ? before a capital, digit or quote; not after e.g., Fig., Dr., et al."""
    text = (
        "See Fig. 2 and e.g. Dr. Smith et al. The value 3.5 rose. Did it? "
        '"Yes," said J. Doe! 42 cases. lower case. 中文。下一句'
    )
    expected = [text.index(s) for s in ("Did it", '"Yes', "42 cases", "下一句")]
    assert expected == sentence_starts(text)


def test_scifact_abstracts_keep_every_invariant() -> None:
    """On 300 real abstracts, every chunking invariant holds at the default settings."""
    with (SCIFACT / "corpus.jsonl").open() as lines:
        records = [json.loads(next(lines)) for _ in range(300)]
    chunker = Chunker(TOKENIZER, 200, 32)
    for record in records:
        doc = _doc(f"{record['title']} {record['text']}")
        _assert_invariants(chunker, doc, chunker.chunk(record["_id"], doc))


@pytest.mark.parametrize(
    "name",
    [
        "federal-register-2020-17221.pdf",
        "multicolumn.pdf",
        "nics-background-checks-2015-11.pdf",
        "habibi.pdf",
        "imagemagick-images.pdf",
    ],
)
def test_real_pdfs_keep_every_invariant(name: str) -> None:
    """Multi-column, table, right-to-left and image-only pages all chunk within the rules."""
    doc = load_path(SHARED_DATA / "pdfs" / name)
    chunker = Chunker(TOKENIZER, 128, 24)
    chunks = chunker.chunk(name, doc)
    _assert_invariants(chunker, doc, chunks)
    expected = sorted({page.number for page in doc.pages if page.text})
    assert expected == sorted({chunk.page for chunk in chunks})


_WORDS = st.sampled_from(
    ["the", "Protein", "binds", "e.g.", "Dr.", "3.5", "x", "naïve", "café", "中文", "Ünïcödé"]
)
_SEPARATORS = st.sampled_from([" ", " ", " ", ". ", "? ", "! ", ", ", "\n", "\n\n", "。", " \t "])
_ODD = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn")), min_size=1, max_size=12
)
_PIECE = st.one_of(
    _WORDS, _WORDS, _SEPARATORS, _SEPARATORS, _ODD, st.just("supercalifragilistic" * 3)
)
_PAGE = st.lists(_PIECE, max_size=120).map("".join)
_SIZES = st.integers(min_value=8, max_value=64).flatmap(
    lambda size: st.tuples(st.just(size), st.integers(min_value=0, max_value=size - 1))
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages=st.lists(_PAGE, min_size=1, max_size=3), sizes=_SIZES)
# Found by a random run: the tokenizer drops the combining mark U+0F35, which joins "the" and
# "000…" into one word; a cut there re-tokenised to another count.
@example(pages=["the\u0f35000" + "supercalifragilistic" * 3], sizes=(23, 0))
def test_chunking_invariants_hold_for_any_text(pages: list[str], sizes: tuple[int, int]) -> None:
    """For any text: offsets map back, sizes are bounded, every visible character is covered in
    order, overlap stays within its budget, and chunking is deterministic."""
    size, overlap = sizes
    chunker = Chunker(TOKENIZER, size, overlap)
    doc = _doc(*pages)
    chunks = chunker.chunk("doc", doc)
    _assert_invariants(chunker, doc, chunks)
    assert chunks == chunker.chunk("doc", doc)


@settings(max_examples=60, deadline=None)
@given(page=_PAGE, size=st.integers(min_value=8, max_value=48))
def test_zero_overlap_chunks_are_disjoint(page: str, size: int) -> None:
    """With overlap 0, consecutive chunks share no characters."""
    chunks = Chunker(TOKENIZER, size, 0).chunk("doc", _doc(page))
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
