"""How the insight pages write times and rates."""

from __future__ import annotations


def when(timestamp: str | None) -> str:
    """``2026-11-23T09:29:43.548+00:00`` as ``2026-11-23 09:29`` (the API's times are UTC)."""
    return (timestamp or "")[:16].replace("T", " ")


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"
