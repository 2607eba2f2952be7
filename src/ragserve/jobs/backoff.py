"""Retry delays: exponential backoff with full jitter (as Celery's ``retry_jitter``)."""

from __future__ import annotations

import random


def backoff_s(
    attempt: int, base_s: float, max_s: float, *, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (1-based):
    uniform in ``[0, min(max_s, base_s * 2 ** (attempt - 1))]``, so retries of many jobs that
    failed together spread out instead of hammering a recovering backend at once."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0.0, ceiling)
