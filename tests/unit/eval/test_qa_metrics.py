"""SQuAD v2.0 answer metrics: normalisation, exact match and token F1, as the official script."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ragserve.eval.metrics import exact_match, normalize_answer, token_f1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("an apple a day", "apple day"),
        ("Another theory", "another theory"),  # articles only as whole words
        ("  U.S.A.  ", "usa"),
        ("THE", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    """Lowercase, drop punctuation, drop a/an/the, collapse whitespace."""
    assert expected == normalize_answer(text)


def test_exact_match_takes_the_best_gold() -> None:
    """EM is 1 when the normalised prediction equals any normalised gold."""
    assert exact_match("the Eiffel Tower", ["Paris", "Eiffel tower."]) == 1.0
    assert exact_match("Eiffel", ["Paris", "Eiffel tower"]) == 0.0


def test_token_f1_by_hand() -> None:
    """F1 over normalised tokens, best gold wins."""
    # pred {cat, sat}, gold {cat, sat, down}: common 2, P = 2/2, R = 2/3, F1 = 2·1·(2/3)/(5/3)
    assert pytest.approx(0.8) == token_f1("cat sat", ["the cat sat down"])
    # multiset overlap: pred x x y, gold x y y -> common = min counts = 1 + 1 = 2; P = R = 2/3
    assert pytest.approx(2 / 3) == token_f1("x x y", ["x y y"])
    assert pytest.approx(1.0) == token_f1("cat sat", ["dog", "The cat sat."])
    assert token_f1("dog", ["cat"]) == 0.0


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("", 1.0), ("The.", 1.0), ("something", 0.0)],
)
def test_unanswerable_question_rewards_only_an_empty_answer(
    prediction: str, expected: float
) -> None:
    """With no gold answer, EM and F1 are 1 iff the prediction normalises to "" (official v2)."""
    assert expected == exact_match(prediction, [])
    assert expected == token_f1(prediction, [])


def test_golds_that_normalise_to_nothing_are_ignored() -> None:
    """Official v2 drops golds that normalise to "" — a gold of only "the" means unanswerable."""
    assert exact_match("", ["the"]) == 1.0
    assert token_f1("the cat", ["the", "cat"]) == 1.0


def test_empty_prediction_on_answerable_question_scores_zero() -> None:
    """Abstaining on an answerable question gets no credit."""
    assert exact_match("", ["France"]) == 0.0
    assert token_f1("", ["France"]) == 0.0


answers = st.text(alphabet=st.sampled_from("ab the,.!XY"), max_size=20)


@given(answers, st.lists(answers, max_size=3))
def test_scores_are_bounded_and_em_never_exceeds_f1(prediction: str, golds: list[str]) -> None:
    """0 ≤ EM ≤ F1 ≤ 1: an exact match is also a perfect token match."""
    em, f1 = exact_match(prediction, golds), token_f1(prediction, golds)
    assert em in (0.0, 1.0)
    assert 0.0 <= em <= f1 <= 1.0


@given(answers, st.lists(answers, max_size=3))
def test_prediction_equal_to_a_gold_is_perfect(prediction: str, others: list[str]) -> None:
    """Predicting one of the golds verbatim scores EM = F1 = 1 when it has content."""
    assume(normalize_answer(prediction))
    golds = [*others, prediction]
    assert exact_match(prediction, golds) == 1.0
    assert token_f1(prediction, golds) == 1.0
