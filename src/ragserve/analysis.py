"""Lexical analysis shared by keyword indexing and extractive answering.

Lowercased Unicode word tokens, English stopwords removed, Snowball English stemming — the
analyzer that gives Lucene-style BM25 its usual quality on English text.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"\w+", re.UNICODE)

# Lucene's English stop set plus a few very common function words.
STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
        "from",
        "has",
        "have",
        "had",
        "were",
        "been",
        "being",
        "its",
        "which",
        "who",
        "whom",
        "what",
        "when",
        "where",
        "why",
        "how",
        "than",
        "do",
        "does",
        "did",
        "so",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
    ]
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    """Index/query terms of ``text``, in order (duplicates kept)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer().stemWords(words)) if words else []
