"""Citation correctness: does a cited chunk contain a gold answer, after SQuAD normalisation."""

from __future__ import annotations

import pytest

from ragserve.eval.answer_metrics import citation_correct, contains_answer


@pytest.mark.parametrize(
    ("text", "golds", "expected"),
    [
        ("The tower is 330 metres tall.", ["330 metres"], True),
        ("Built by THE Eiffel company.", ["eiffel company"], True),  # case and articles
        ("It costs 1,200 euros.", ["1200 euros"], True),  # punctuation dropped
        ("A party was held.", ["art"], False),  # whole tokens only
        ("Nothing relevant here.", ["Paris", "France"], False),
    ],
)
def test_contains_answer(text: str, golds: list[str], expected: bool) -> None:
    """Normalised gold answers are found as whole-token spans of the normalised text."""
    assert expected == contains_answer(text, golds)


def test_one_correct_citation_is_enough() -> None:
    """1 when any cited chunk holds a gold answer."""
    assert citation_correct(["Rome is in Italy.", "Paris is in France."], ["Paris"]) == 1.0


def test_wrong_or_missing_citations_score_zero() -> None:
    """0 when no cited chunk holds it, and when the answer cites nothing."""
    assert citation_correct(["Rome is in Italy."], ["Paris"]) == 0.0
    assert citation_correct([], ["Paris"]) == 0.0


def test_undefined_without_a_gold_answer() -> None:
    """Unanswerable questions have no gold answer: a ValueError, not a silent 0."""
    with pytest.raises(ValueError, match="no gold answer"):
        citation_correct(["anything"], [])
    with pytest.raises(ValueError, match="no gold answer"):
        contains_answer("anything", ["the"])
