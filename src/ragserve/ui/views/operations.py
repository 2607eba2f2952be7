"""Admin insight into how the service runs: answer latency per stage, the cache, the job queue."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.models import Job
from ragserve.ui.views.formatting import percent, when

STAGE_ORDER = ("total", "total_uncached", "embed", "retrieve", "rerank", "generate", "cache")
JOB_STATES = ("queued", "running", "failed")


def latency(client: ApiClient) -> None:
    """Percentiles per pipeline stage over the latest answers (every replica's, from the store)."""
    limit = st.segmented_control(
        "Latest answers", [100, 1000, 10000], default=1000, key="stats-limit"
    )
    try:
        stats = client.answer_stats(limit=int(limit or 1000))
    except ApiError as exc:
        st.error(exc.friendly())
        return
    if not stats["answers"]:
        st.info("No answers yet: ask something on the Chat page.")
        return
    answers, hits, abstained = st.columns(3)
    answers.metric("Answers", f"{stats['answers']:,}")
    hits.metric("Cache hit rate", percent(stats["cache_hit_rate"]))
    abstained.metric("Abstained", percent(stats["abstained_rate"]))
    st.caption(
        f"From {when(stats['since'])} to {when(stats['until'])} UTC; mean tokens per answer: "
        f"{stats['mean_prompt_tokens']:.0f} prompt, {stats['mean_completion_tokens']:.0f} "
        "completion."
    )
    stages = sorted(stats["stages"], key=lambda s: stage_rank(s["stage"]))
    st.dataframe(
        [
            {
                "stage": s["stage"],
                "answers": s["count"],
                "mean ms": round(s["mean_ms"], 1),
                "p50 ms": round(s["p50_ms"], 1),
                "p95 ms": round(s["p95_ms"], 1),
                "p99 ms": round(s["p99_ms"], 1),
                "max ms": round(s["max_ms"], 1),
            }
            for s in stages
        ],
        hide_index=True,
    )
    st.bar_chart(
        {
            "stage": [s["stage"] for s in stages],
            "p50 ms": [s["p50_ms"] for s in stages],
            "p95 ms": [s["p95_ms"] for s in stages],
        },
        x="stage",
        y=["p50 ms", "p95 ms"],
        stack=False,
        horizontal=True,
        sort=False,
        height=80 + 45 * len(stages),
        x_label="",
        y_label="milliseconds",  # horizontal bars: this labels the value axis
    )


def cache(client: ApiClient) -> None:
    """Hits, misses and hit rate per cache level, as counted by the API process answering."""
    try:
        stats = client.cache_stats()
    except ApiError as exc:
        st.error(exc.friendly())
        return
    if not stats["enabled"]:
        st.info("The query cache is off (cache.enabled = false).")
        return
    levels: list[dict[str, Any]] = stats["levels"]
    for column, level in zip(st.columns(len(levels) or 1), levels, strict=False):
        looked_up = level["hits"] + level["misses"]
        column.metric(
            f"{level['level'].upper()} hit rate",
            percent(level["hit_rate"]) if looked_up else "—",
            f"{looked_up:,} lookups",
            delta_color="off",
        )
    st.dataframe(levels, hide_index=True)
    st.caption("Counters of the API process that answered, since it started.")


def jobs(client: ApiClient) -> None:
    """The queue: how many jobs wait, run and failed, and which."""
    listed: dict[str, list[Job]] = {}
    try:
        for state in JOB_STATES:
            listed[state] = client.jobs(state=state, limit=100)
    except ApiError as exc:
        st.error(exc.friendly())
        return
    for column, state in zip(st.columns(len(JOB_STATES)), JOB_STATES, strict=True):
        count = len(listed[state])
        column.metric(state.capitalize(), f"{count}+" if count >= 100 else str(count))
    rows = [
        {
            "job": j.id[:12],
            "kind": j.kind,
            "collection": j.collection,
            "state": j.state,
            "progress": f"{j.progress:.0%}",
            "attempts": j.attempts,
            "created": j.created_at,
            "error": j.error or "",
        }
        for state in JOB_STATES
        for j in listed[state]
    ]
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.info("No job is queued, running or failed.")


def stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
