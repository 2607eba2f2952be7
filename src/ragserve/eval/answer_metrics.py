"""Lexical answer metrics beyond SQuAD's EM/F1: whether the cited sources hold a gold answer.

Texts are compared after SQuAD normalisation (:func:`~ragserve.eval.metrics.normalize_answer`),
as whole tokens, so "1,200 km" is found in "about 1200 km away" but "art" is not in "party".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ragserve.eval.metrics import normalize_answer

__all__ = ["citation_correct", "contains_answer"]


def _golds(golds: Iterable[str]) -> list[str]:
    normalised = [gold for gold in map(normalize_answer, golds) if gold]
    if not normalised:
        raise ValueError("no gold answer: citation correctness is undefined for this question")
    return normalised


def contains_answer(text: str, golds: Iterable[str]) -> bool:
    """Whether normalised ``text`` contains one of the normalised ``golds`` as whole tokens.

    Raises ``ValueError`` when no gold answer is left after normalisation (unanswerable).
    """
    haystack = f" {normalize_answer(text)} "
    return any(f" {gold} " in haystack for gold in _golds(golds))


def citation_correct(cited_texts: Sequence[str], golds: Iterable[str]) -> float:
    """1 when one of the cited chunks' texts contains a gold answer, else 0 (also when the
    answer cites nothing). Raises ``ValueError`` for a question without a gold answer."""
    wanted = _golds(golds)
    return float(any(contains_answer(text, wanted) for text in cited_texts))
