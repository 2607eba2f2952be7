"""Metadata filter parsing and evaluation."""

from __future__ import annotations

import pytest

from ragserve.errors import InvalidQuery
from ragserve.retrieve.filters import Condition, Filter, matches, parse_filter


def test_plain_values_mean_equality_and_operators_parse() -> None:
    """`{"lang": "en", "year": {"$gte": 2020}}` becomes two ANDed conditions."""
    parsed = parse_filter({"lang": "en", "year": {"$gte": 2020, "$lt": 2030}})
    assert parsed == Filter(
        (
            Condition("lang", "$eq", "en"),
            Condition("year", "$gte", 2020),
            Condition("year", "$lt", 2030),
        )
    )


def test_empty_filter_is_none() -> None:
    """No filter and an empty mapping both mean: no filtering."""
    assert parse_filter(None) is None
    assert parse_filter({}) is None


@pytest.mark.parametrize(
    "raw",
    [
        {"x": {"$regex": "a"}},
        {"x": {"$in": []}},
        {"x": {"$in": "abc"}},
        {"x": {"$gt": [1]}},
        {"x": {}},
        {"bad field": 1},
        {"x": {"nested": {"deep": 1}}},
        {"x": [1, 2]},
    ],
)
def test_invalid_filters_are_rejected_with_a_reason(raw: dict[str, object]) -> None:
    """Unknown operators, bad values and bad field names raise InvalidQuery."""
    with pytest.raises(InvalidQuery):
        parse_filter(raw)


def test_matches_evaluates_each_operator() -> None:
    """`matches` implements every operator on a flat mapping."""
    meta = {"lang": "en", "year": 2021}
    assert matches(meta, Condition("lang", "$eq", "en"))
    assert matches(meta, Condition("lang", "$ne", "de"))
    assert matches(meta, Condition("year", "$in", (2020, 2021)))
    assert not matches(meta, Condition("year", "$nin", (2021,)))
    assert matches(meta, Condition("year", "$gte", 2021))
    assert not matches(meta, Condition("year", "$lt", 2021))
    assert not matches(meta, Condition("missing", "$gt", 1))
    assert not matches(meta, Condition("lang", "$gt", 3))
