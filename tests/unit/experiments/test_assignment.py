"""Sticky assignment: stable across processes, proportional to shares, validated."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scipy import stats

from ragserve.errors import InputError
from ragserve.experiments.assignment import Split, bucket


def test_the_same_subject_gets_the_same_variant_in_another_process() -> None:
    """A fresh interpreter (another hash seed) assigns 200 subjects exactly as this one."""
    split = Split.of({"control": 0.5, "mmr": 0.3, "rrf": 0.2})
    subjects = [f"key-{i}" for i in range(200)]
    here = [split.assign("exp-42", s) for s in subjects]
    code = (
        "from ragserve.experiments.assignment import Split\n"
        "split = Split.of({'control': 0.5, 'mmr': 0.3, 'rrf': 0.2})\n"
        "print(','.join(split.assign('exp-42', f'key-{i}') for i in range(200)))\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert there.split(",") == here


def test_shares_hold_within_statistical_tolerance() -> None:
    """20,000 subjects over 0.5/0.3/0.2: a chi-square test does not reject the shares."""
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    split = Split.of(shares)
    n = 20_000
    counts = dict.fromkeys(shares, 0)
    for i in range(n):
        counts[split.assign("exp-shares", f"user-{i}")] += 1
    observed = [counts[v] for v in shares]
    expected = [n * s for s in shares.values()]
    assert stats.chisquare(observed, expected).pvalue > 0.001, observed


def test_experiments_assign_independently() -> None:
    """The same subject's bucket in two experiments is unrelated (no subject is always 'a')."""
    points = [(bucket("exp-1", f"s{i}"), bucket("exp-2", f"s{i}")) for i in range(2_000)]
    first, second = zip(*points, strict=True)
    assert abs(stats.pearsonr(first, second).statistic) < 0.1


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({"a": 1.0}, "at least two"),
        ({"a": 0.5, "b": 0.4}, "sum to 1"),
        ({"a": 1.2, "b": -0.2}, "above 0"),
        ({"a": 0.5, " ": 0.5}, "empty"),
        ({"a": float("nan"), "b": 0.5}, "above 0"),
    ],
)
def test_invalid_splits_are_refused(shares: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Split.of(shares)
