"""The grounded prompt every LLM generator sends, and how its answers are read back.

The model sees numbered sources and must cite them as ``[n]`` or reply with
:data:`ABSTAIN_TEXT`; :func:`extract_citations` and :func:`detect_abstention` read that
contract back out of whatever text came back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ragserve.types import Source

ABSTAIN_TEXT = "I could not find the answer in the provided sources."

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources the user gives you. "
    "Cite every claim with the number of its source in square brackets, like [1]. "
    "If the sources do not contain the answer, reply exactly with this sentence and nothing "
    f"else: {ABSTAIN_TEXT} Be concise."
)

CHARS_PER_TOKEN = 3.5
"""Rough English characters per token; errs low so an estimated prompt rarely overflows."""

_PER_SOURCE_OVERHEAD = 16  # label line, blank line and chat-template tokens, in tokens
_MIN_SOURCE_TOKENS = 24  # a source cut shorter than this is dropped, not sent as a stub
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_NON_WORD = re.compile(r"[^a-z0-9]+")

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` from its length alone; good enough to budget a prompt."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Prompt:
    """A system and a user message, ready for any chat-completion API."""

    system: str
    user: str
    sources_used: int

    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user},
        ]


def source_label(source: Source) -> str:
    """``[n] (title, page p)``: the header the model sees above a source's text."""
    hit = source.hit
    title = hit.document_title or hit.document_source or hit.chunk.document_id
    return f"[{source.number}] ({title}, page {hit.chunk.page})"


def build_prompt(
    question: str,
    sources: Sequence[Source],
    *,
    max_tokens: int = 1536,
    count_tokens: TokenCounter = estimate_tokens,
    system: str | None = None,
) -> Prompt:
    """The grounded prompt, its sources fitted into ``max_tokens`` in rank order; ``system``
    replaces :data:`SYSTEM_PROMPT` (a configuration's own prompt).

    Earlier sources are kept whole while they fit; the first that does not is cut at a word
    boundary and the rest are dropped, since retrieval put the likeliest evidence first.
    """
    system = system or SYSTEM_PROMPT
    budget = max_tokens - count_tokens(system) - count_tokens(question) - 16
    blocks: list[str] = []
    for source in sources:
        text = source.hit.chunk.text.strip()
        room = budget - _PER_SOURCE_OVERHEAD - count_tokens(source_label(source))
        if room < _MIN_SOURCE_TOKENS:
            break
        cost = count_tokens(text)
        if cost > room:
            text = _truncate(text, room, count_tokens)
            cost = count_tokens(text)
        blocks.append(f"{source_label(source)}\n{text}")
        budget -= cost + _PER_SOURCE_OVERHEAD + count_tokens(source_label(source))
    body = "\n\n".join(blocks)
    user = f"Sources:\n\n{body}\n\nQuestion: {question.strip()}"
    return Prompt(system=system, user=user, sources_used=len(blocks))


def _truncate(text: str, tokens: int, count_tokens: TokenCounter) -> str:
    """The longest word-boundary prefix of ``text`` (plus an ellipsis) within ``tokens``."""
    cut = len(text)
    for _ in range(12):  # each pass shrinks by the overshoot ratio; converges in 1-3 passes
        cost = count_tokens(text[:cut] + " …")
        if cost <= tokens:
            break
        cut = max(0, min(cut - 1, int(cut * tokens / cost * 0.95)))
    else:
        cut = 0
    space = text.rfind(" ", 0, cut + 1)
    prefix = text[: space if space > cut // 2 else cut].rstrip()
    return f"{prefix} …"


def extract_citations(text: str, n_sources: int) -> list[int]:
    """Source numbers cited as ``[n]`` or ``[n, m]``, in first-mention order, valid ones only."""
    cited: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if 1 <= number <= n_sources and number not in cited:
                cited.append(number)
    return cited


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("couldn't", "could not")
    return _NON_WORD.sub(" ", text).strip()


_ABSTAIN_NORMALISED = _normalise(ABSTAIN_TEXT)


def detect_abstention(text: str) -> bool:
    """Whether the answer declines: it says :data:`ABSTAIN_TEXT` (case, punctuation and
    "couldn't" aside) or says nothing at all."""
    normalised = _normalise(text)
    return not normalised or _ABSTAIN_NORMALISED in normalised


def strip_pieces(pieces: Iterable[str]) -> Iterator[str]:
    """Stream ``pieces`` so that, joined, they equal ``"".join(pieces).strip()``.

    Leading whitespace is dropped and trailing whitespace is held back until more text
    follows, so a streamed answer matches the stripped non-streamed one exactly.
    """
    started = False
    pending = ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            if not piece:
                continue
            started = True
        body = piece.rstrip()
        if body:
            yield pending + body
            pending = piece[len(body) :]
        else:
            pending += piece
