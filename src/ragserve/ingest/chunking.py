"""Token-aware chunking, measured in the embedder's own tokens.

Each page is tokenised once; chunks are spans of token indices cut at the strongest nearby
boundary (paragraph > sentence > line > word > token), so a chunk's text is exactly
``page.text[start:end]``.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from ragserve.embed.base import Tokenizer
from ragserve.types import Chunk, ExtractedDocument, Metadata

# Two patterns: one alternation with a shared start is several times slower to scan.
_SENTENCE_END = re.compile(r"[.!?…][.!?…]*[\"'”’)\]]*\s+")
_CJK_SENTENCE_END = re.compile(r"[。！？][。！？]*[\"'”’」』)]*\s*")
_OPENING_QUOTES = "\"'“‘«(["
# Words ending in "." that rarely end a sentence; checked against the text before the period.
_ABBREVIATION = re.compile(
    r"(?:^|[\s(\[])(?:e\.g|i\.e|et al|al|fig|figs|eq|eqs|ref|refs|sec|ch|no|nos|vol|pp|p|cf|vs"
    r"|etc|approx|ca|resp|viz|dr|mr|mrs|ms|prof|st|jr|sr|inc|ltd|co|corp|dept|univ|u\.s"
    r"|z\.b|d\.h|bzw|vgl|ggf|usw|[a-z])\Z",
    re.IGNORECASE,
)
_LINE_BREAK = re.compile(r"\n\s*")
_ID_CHARS = 32


class Chunker:
    """Cuts documents into chunks of at most ``size`` tokens that overlap by up to ``overlap``.

    Whole paragraphs and sentences are packed greedily; a sentence is split (between words, or
    between tokens for a single over-long word) only when it alone exceeds ``size``. The next
    chunk repeats the previous chunk's trailing whole sentences, up to ``overlap`` tokens.
    """

    version = "1"

    def __init__(self, tokenizer: Tokenizer, size: int, overlap: int) -> None:
        if size < 1:
            raise ValueError(f"chunk size must be at least 1 token, got {size}")
        if not 0 <= overlap < size:
            raise ValueError(f"chunk overlap must be in [0, size), got {overlap} for size {size}")
        self.tokenizer = tokenizer
        self.size = size
        self.overlap = overlap

    @property
    def fingerprint(self) -> str:
        """Identifies this chunking configuration (e.g. for a pipeline hash)."""
        return f"chunker-v{self.version}:size={self.size}:overlap={self.overlap}"

    def chunk(
        self, document_id: str, doc: ExtractedDocument, metadata: Metadata | None = None
    ) -> list[Chunk]:
        """Chunks of every page of ``doc``, in order, with deterministic ids."""
        chunks: list[Chunk] = []
        for page in doc.pages:
            for start, end, tokens in self._spans(page.text):
                text = page.text[start:end]
                ordinal = len(chunks)
                chunks.append(
                    Chunk(
                        id=chunk_id(document_id, ordinal, text),
                        document_id=document_id,
                        ordinal=ordinal,
                        text=text,
                        page=page.number,
                        start=start,
                        end=end,
                        token_count=tokens,
                        metadata=dict(metadata or {}),
                    )
                )
        return chunks

    def _spans(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, token count) of each chunk of one page's text."""
        offsets = self.tokenizer.offsets(text)
        if not offsets:
            return []
        page = _Page.build(text, offsets)
        spans: list[tuple[int, int, int]] = []
        first = previous_end = 0
        while True:
            last = self._cut(page, first, previous_end)
            first, last, tokens = self._fit(page, first, last, previous_end)
            spans.append((*page.span(first, last), tokens))
            if last >= page.count:
                return spans
            first = self._next_start(page, first, last) if self.overlap else last
            previous_end = last

    def _cut(self, page: _Page, first: int, previous_end: int) -> int:
        """Token index where the chunk starting at ``first`` ends (exclusive)."""
        limit = first + self.size
        if limit >= page.count:
            return page.count
        floor = max(first, previous_end)
        half = max(floor, first + self.size // 2)
        paragraph = _last(page.paragraphs, half, limit)
        if paragraph is not None:
            return paragraph
        sentence = _last(page.sentences, floor, limit)
        if sentence is not None and self._keeps_sentence(page, first, sentence):
            return sentence
        line = _last(page.lines, half, limit)
        if line is not None:
            return line
        word = _last(page.words, floor, limit)
        return page.split_at_or_before(limit, floor) if word is None else word

    def _keeps_sentence(self, page: _Page, first: int, cut: int) -> bool:
        """Cut at a sentence end unless that leaves a tiny chunk and the next sentence must be
        split anyway (it alone exceeds ``size``)."""
        if cut - first >= self.size // 4:
            return True
        following = _first(page.sentences, cut)
        return (page.count if following is None else following) - cut <= self.size

    def _next_start(self, page: _Page, first: int, last: int) -> int:
        """Start of the next chunk: the earliest sentence (else word, else token) boundary that
        keeps the overlap within budget."""
        floor = max(first + 1, last - self.overlap)
        for candidates in (page.units, page.words):
            found = _first(candidates, floor - 1)
            if found is not None and found < last:
                return found
        return page.split_at_or_after(floor, last)

    def _fit(self, page: _Page, first: int, last: int, previous_end: int) -> tuple[int, int, int]:
        """Adjusts a chunk cut inside a word until its re-tokenised text fits ``size``.

        A word piece cut from its word can re-tokenise into more tokens, so drop tokens from the
        end, or from the start once the end would fall back into the previous chunk. Returns the
        new ``first`` and ``last`` and the chunk's token count.
        """
        while page.inside_word(first) or page.inside_word(last):
            start, end = page.span(first, last)
            tokens = self.tokenizer.count(page.text[start:end])
            if tokens <= self.size or last - first <= 1:
                return page.split_at_or_before(first, -1), page.split_at_or_after(last), tokens
            if last - 1 > previous_end:
                last -= 1
            else:
                first += 1
        return first, last, last - first


def _word_break(text: str, previous_end: int, start: int) -> bool:
    """Whether whitespace separates two tokens. A gap of characters the tokenizer drops
    (combining marks, U+FFFD) joins them into one word, so a cut there re-tokenises."""
    return any(char.isspace() for char in text[previous_end:start])


@dataclass(frozen=True)
class _Page:
    """One page's text, its token offsets, and the token indices where a chunk may start."""

    text: str
    starts: list[int]
    ends: list[int]
    paragraphs: list[int]
    sentences: list[int]  # paragraph starts included
    lines: list[int]
    units: list[int]  # sentences and lines: what an overlap may start at
    words: list[int]

    @classmethod
    def build(cls, text: str, offsets: list[tuple[int, int]]) -> _Page:
        starts = [start for start, _ in offsets]
        ends = [end for _, end in offsets]
        paragraphs: list[int] = []
        lines: list[int] = []
        for match in _LINE_BREAK.finditer(text):
            index = bisect_left(starts, match.end())
            if 0 < index < len(starts) and ends[index - 1] <= match.start():
                (paragraphs if match.group().count("\n") > 1 else lines).append(index)
        sentences = set(paragraphs)
        for position in sentence_starts(text):
            index = bisect_left(starts, position)
            if 0 < index < len(starts) and starts[index] == position:
                sentences.add(index)
        return cls(
            text=text,
            starts=starts,
            ends=ends,
            paragraphs=paragraphs,
            sentences=sorted(sentences),
            lines=lines,
            units=sorted(sentences.union(lines)),
            words=[i for i in range(1, len(starts)) if _word_break(text, ends[i - 1], starts[i])],
        )

    @property
    def count(self) -> int:
        return len(self.starts)

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Characters of tokens ``first..last-1``, plus untokenised visible characters (e.g.
        U+FFFD) up to the next token, so every visible character lands in some chunk."""
        start = self.starts[first]
        if first == 0:
            start -= len(self.text[:start].lstrip())
        end = self.ends[last - 1]
        following = self.starts[last] if last < self.count else len(self.text)
        return start, end + len(self.text[end:following].rstrip())

    def inside_word(self, index: int) -> bool:
        """Whether a cut before token ``index`` has no whitespace to fall on."""
        return 0 < index < self.count and not _word_break(
            self.text, self.ends[index - 1], self.starts[index]
        )

    def splittable(self, index: int) -> bool:
        """Whether tokens ``index - 1`` and ``index`` cover different characters (a Hangul
        syllable, say, becomes two tokens over one character)."""
        return not 0 < index < self.count or self.starts[index] >= self.ends[index - 1]

    def split_at_or_before(self, index: int, floor: int) -> int:
        """The last splittable index in ``(floor, index]``, else ``index``."""
        for candidate in range(index, floor, -1):
            if self.splittable(candidate):
                return candidate
        return index

    def split_at_or_after(self, index: int, ceiling: int | None = None) -> int:
        """The first splittable index in ``[index, ceiling)``, else ``ceiling`` (or the end)."""
        stop = self.count if ceiling is None else ceiling
        for candidate in range(index, stop):
            if self.splittable(candidate):
                return candidate
        return stop


def chunk_id(document_id: str, ordinal: int, text: str) -> str:
    """Deterministic chunk id: the first 32 hex digits of sha256(document_id, ordinal, text)."""
    digest = hashlib.sha256(f"{document_id}\x00{ordinal}\x00{text}".encode())
    return digest.hexdigest()[:_ID_CHARS]


def sentence_starts(text: str) -> list[int]:
    """Character offsets where a sentence starts (after the first), by a regex heuristic.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes) followed by space and a
    capital, digit or opening quote, unless the period ends a common abbreviation (``e.g.``,
    ``et al.``, ``Fig.``, ``Dr.``, an initial); CJK ``。！？`` always end one.
    """
    found: list[int] = []
    for match in _SENTENCE_END.finditer(text):
        start = match.end()
        if start >= len(text):
            break
        following = text[start]
        if following in _OPENING_QUOTES and start + 1 < len(text):
            following = text[start + 1]
        if not (following.isupper() or following.isdigit() or following in _OPENING_QUOTES):
            continue
        if text[match.start()] == "." and _ABBREVIATION.search(
            text, max(0, match.start() - 8), match.start()
        ):
            continue
        found.append(start)
    cjk = [match.end() for match in _CJK_SENTENCE_END.finditer(text) if match.end() < len(text)]
    return sorted({*found, *cjk}) if cjk else found


def _last(candidates: list[int], above: int, at_most: int) -> int | None:
    """The largest candidate in ``(above, at_most]``."""
    position = bisect_right(candidates, at_most)
    if position and candidates[position - 1] > above:
        return candidates[position - 1]
    return None


def _first(candidates: list[int], above: int) -> int | None:
    """The smallest candidate greater than ``above``."""
    position = bisect_right(candidates, above)
    return candidates[position] if position < len(candidates) else None
