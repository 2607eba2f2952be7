"""Retry delays: exponential, capped, jittered."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ragserve.config import JobsSettings
from ragserve.jobs.backoff import backoff_s
from ragserve.jobs.celery_app import retry_countdown


@given(
    attempt=st.integers(min_value=1, max_value=50),
    base=st.floats(min_value=0.0, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=120.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_stays_within_the_exponential_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    """Every delay lies in [0, min(cap, base * 2^(attempt-1))]."""
    delay = backoff_s(attempt, base, cap, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** (attempt - 1))


def test_delays_grow_and_spread() -> None:
    """Mean delays double per attempt until the cap, and jobs failing together spread out."""
    rng = random.Random(7)
    means = [sum(backoff_s(a, 1.0, 8.0, rng=rng) for _ in range(4000)) / 4000 for a in (1, 2, 3, 6)]
    assert [round(m) for m in means] == [0, 1, 2, 4]  # uniform: half the ceiling 1, 2, 4, 8
    assert len({round(backoff_s(3, 1.0, 8.0, rng=rng), 3) for _ in range(50)}) > 40


def test_celery_countdown_uses_the_same_bounds() -> None:
    """The Celery backend's countdown (Celery's own backoff) is an int within the ceiling."""
    settings = JobsSettings(retry_backoff_s=2, retry_backoff_max_s=10)
    for attempt, ceiling in ((1, 2), (2, 4), (3, 8), (5, 10)):
        countdowns = {retry_countdown(attempt, settings) for _ in range(200)}
        assert countdowns <= set(range(ceiling + 1))
        assert max(countdowns) >= ceiling - 1
