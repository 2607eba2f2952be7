"""Insight: the tenant's usage and remaining quota for everyone; for administrators, answer
latency per stage, cache hit rates, the job queue, experiments and evaluation runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import streamlit as st

from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.views import operations, results
from ragserve.ui.views.formatting import when

HISTORY_DAYS = 30


def render(client: ApiClient, *, is_admin: bool) -> None:
    st.header("Insights")
    usage(client)
    if not is_admin:
        st.caption("Latency, cache, jobs, experiments and evaluations are shown to admins.")
        return
    latency, cache, jobs, experiments, evaluations = st.tabs(
        ["Answers and latency", "Cache", "Jobs", "Experiments", "Evaluation runs"]
    )
    with latency:
        operations.latency(client)
    with cache:
        operations.cache(client)
    with jobs:
        operations.jobs(client)
    with experiments:
        results.experiments(client)
    with evaluations:
        results.evaluation_runs(client)


def usage(client: ApiClient) -> None:
    """Today's quota (used, left, when it resets), each with its last 30 days as bars."""
    st.subheader("Usage and quota")
    try:
        body = client.usage(days=HISTORY_DAYS)
    except ApiError as exc:
        st.error(exc.friendly())
        return
    quota: dict[str, Any] = body["quota"]
    questions, tokens, history = st.columns([1, 1, 2])
    with questions:
        meter("Questions today", quota["questions_used"], quota["questions_limit"])
    with tokens:
        meter("LLM tokens today", quota["tokens_used"], quota["tokens_limit"])
    with history:
        days, counts = daily(body["days"], lambda d: d["questions"], quota["resets_at"])
        st.bar_chart(
            {"day": days, "questions": counts},
            x="day",
            y="questions",
            height=170,
            x_label=f"questions per day, the last {HISTORY_DAYS} days (UTC)",
            y_label="",
        )
    st.caption(f"Quotas reset at {when(quota['resets_at'])} UTC.")


def daily(
    days: list[dict[str, Any]], value: Callable[[dict[str, Any]], int], resets_at: str
) -> tuple[list[str], list[int]]:
    """Each of the last ``HISTORY_DAYS`` days up to today (the day before the quota resets) as
    ``MM-DD``, and its value (0 where nothing was recorded)."""
    today = date.fromisoformat(resets_at[:10]) - timedelta(days=1)
    recorded = {d["day"]: value(d) for d in days}
    span = [today - timedelta(days=back) for back in range(HISTORY_DAYS - 1, -1, -1)]
    return [day.isoformat()[5:] for day in span], [recorded.get(d.isoformat(), 0) for d in span]


def meter(label: str, used: int, limit: int) -> None:
    """A metric with what is left, then a bar of the share used (no bar when unlimited)."""
    unlimited = limit <= 0
    st.metric(
        label,
        f"{used:,}",
        "no limit" if unlimited else f"{max(limit - used, 0):,} of {limit:,} left",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
    if not unlimited:
        st.progress(min(used / limit, 1.0))
