"""Admin insight into what works best: experiments with their analysis and plots, and stored
evaluation runs with their reports (both rendered by the API as self-contained HTML)."""

from __future__ import annotations

import base64
from typing import Any

import streamlit as st

from ragserve.ui.client import ApiClient, ApiError

REPORT_HEIGHT = 900
HEADLINE_METRICS = ("ndcg@10", "recall@100", "mrr@10", "f1", "exact_match")


def experiments(client: ApiClient) -> None:
    try:
        listed = client.experiments()
    except ApiError as exc:
        st.error(exc.friendly())
        return
    if not listed:
        st.info("No experiments yet: `ragserve experiment create` starts one.")
        return
    st.dataframe(
        [
            {
                "experiment": e["name"],
                "collection": e["collection"],
                "state": e["state"],
                "variants": ", ".join(f"{v['name']} ({v['config']})" for v in e["variants"]),
                "winner": e.get("winner") or "",
                "started": e.get("started_at") or "",
            }
            for e in listed
        ],
        hide_index=True,
    )
    by_id = {e["id"]: e for e in listed}
    chosen = st.selectbox(
        "Experiment", list(by_id), format_func=lambda i: by_id[i]["name"], key="experiment"
    )
    if chosen is None:
        return
    try:
        analysis = client.experiment_analysis(chosen)
        report = client.experiment_report(chosen)
    except ApiError as exc:
        st.error(exc.friendly())
        return
    verdicts(analysis)
    show_report(report)


def verdicts(analysis: dict[str, Any]) -> None:
    """Answers per variant, the sample-ratio check, and each comparison's summary."""
    columns = st.columns(len(analysis["variants"]) or 1)
    for column, variant in zip(columns, analysis["variants"], strict=False):
        column.metric(
            f"{variant['name']} ({variant['config']})",
            f"{variant['count']:,} answers",
            f"{variant['subjects']:,} users",
            delta_color="off",
        )
    srm = analysis["sample_ratio"]
    if srm["status"] == "mismatch":
        st.warning(f"Sample ratio mismatch (p = {srm['p_value']:.2g}): check the assignment.")
    for comparison in analysis["comparisons"]:
        st.markdown(
            f"**{comparison['variant']} vs {comparison['control']}:** {comparison['summary']}"
        )


def evaluation_runs(client: ApiClient) -> None:
    try:
        runs = client.eval_runs()
    except ApiError as exc:
        st.error(exc.friendly())
        return
    if not runs:
        st.info("No evaluation runs yet: `ragserve eval beir|squad` stores one per configuration.")
        return
    st.dataframe([run_row(r) for r in runs], hide_index=True)
    by_id = {r["id"]: r for r in runs}
    chosen = st.selectbox(
        "Run", list(by_id), format_func=lambda i: run_label(by_id[i]), key="eval-run"
    )
    if chosen is None:
        return
    try:
        report = client.eval_run_report(chosen)
    except ApiError as exc:
        st.error(exc.friendly())
        return
    show_report(report)


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, float] = run["metrics"]
    row: dict[str, Any] = {
        "run": run["id"][:10],
        "label": run["label"],
        "dataset": run["dataset"],
        "config": run.get("config_name") or run["config_hash"][:10],
    }
    row.update({name: round(metrics[name], 4) for name in HEADLINE_METRICS if name in metrics})
    row["created"] = run["created_at"]
    return row


def run_label(run: dict[str, Any]) -> str:
    return f"{run['label']} · {run['dataset']} · {run['created_at'][:16]}"


def show_report(report: str) -> None:
    """The API's self-contained HTML report in an iframe of its own: a ``data:`` URL gives it
    an opaque origin, so nothing in it can reach the app's page or session."""
    encoded = base64.b64encode(report.encode()).decode("ascii")
    st.iframe(f"data:text/html;base64,{encoded}", height=REPORT_HEIGHT)
