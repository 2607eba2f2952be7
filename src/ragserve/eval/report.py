"""HTML reports of one evaluation run and of a paired comparison of two, readable without the
service: tables of metrics with intervals, p-values and verdicts, per-query distributions,
sorted paired differences and latency distributions (built with :mod:`ragserve.reports.html`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ragserve.eval.compare import METRICS, MetricComparison, RunComparison, comparable_scores
from ragserve.experiments.stats import summarize
from ragserve.reports.html import (
    Html,
    badge,
    code_block,
    image,
    new_figure,
    page,
    paragraph,
    section,
    table,
)
from ragserve.store.experiments import EvalRunRecord

__all__ = ["comparison_report", "run_report"]

LATENCY = "latency_ms"
_COLUMNS = 3
_COLOURS = ("#4c72b0", "#dd8452")


def run_report(run: EvalRunRecord) -> str:
    """One run: what ran, its metrics, per-query distributions and latency."""
    rows = comparable_scores(run.per_query)
    metrics = [m for m in _metric_order(rows) if m != LATENCY]
    sections = [
        section("Run", table(("field", "value"), _run_fields(run))),
        section("Metrics", table(("metric", "value"), sorted(run.metrics.items()))),
        section(
            "Per-query metrics",
            paragraph("Mean over the queries scored, with a 95% t-interval."),
            table(_SUMMARY_HEADERS, [_summary_row(m, _column(rows, m)) for m in metrics]),
        ),
    ]
    if metrics:
        sections.append(section("Distributions", _histograms(rows, metrics, run)))
    latencies = _column(rows, LATENCY)
    if latencies:
        figure, (ax,) = new_figure(7.0, 3.0)
        _latency_hist(ax, [(_name(run), latencies)])
        sections.append(
            section("Latency", table(("timing", "value"), run.timing.items()), image(figure, _LAT))
        )
    sections.append(section("Configuration", code_block(json.dumps(run.config, indent=2))))
    return page(f"Evaluation run {run.id[:12]}", sections, subtitle=_subtitle(run))


def comparison_report(comparison: RunComparison, a: EvalRunRecord, b: EvalRunRecord) -> str:
    """B against A: the paired table, distributions side by side, sorted per-query
    differences, latency, and what differs between the configurations."""
    quality = [c for c in comparison.metrics if c.metric != LATENCY]
    sections = [
        section(
            "Runs",
            table(
                ("", "run", "label", "config hash", "created"),
                [
                    ("A", a.id, a.label, a.config_hash, a.created_at),
                    ("B", b.id, b.label, b.config_hash, b.created_at),
                ],
            ),
            paragraph(
                f"Dataset {comparison.dataset} ({comparison.dataset_fingerprint}), "
                f"{comparison.queries} queries in common. Differences are B − A; the verdict "
                "follows the paired t-test (McNemar's exact test for binary metrics) at α = 0.05."
            ),
        ),
        section(
            "Paired comparison",
            table(_COMPARISON_HEADERS, map(_comparison_row, comparison.metrics)),
        ),
    ]
    if quality:
        sections.append(section("Per-query distributions", _boxplots(comparison, quality, a, b)))
        sections.append(section("Paired differences", _differences(comparison, quality)))
    if any(c.metric == LATENCY for c in comparison.metrics):
        sections.append(section("Latency", _latency_comparison(comparison, a, b)))
    changed = _config_changes(a.config, b.config)
    sections.append(
        section(
            "Configuration differences",
            table(("setting", "A", "B"), changed) if changed else paragraph("none"),
        )
    )
    title = f"{_name(a)} vs {_name(b)}"
    return page(title, sections, subtitle=f"{comparison.dataset} · {comparison.queries} queries")


_COMPARISON_HEADERS = (
    "metric", "better", "n", "mean A", "mean B", "B − A", "95% CI", "paired t p",
    "Wilcoxon p", "McNemar p", "B wins / ties / A wins", "verdict",
)  # fmt: skip
_SUMMARY_HEADERS = ("metric", "n", "mean", "95% CI low", "95% CI high", "std", "p50", "min", "max")
_LAT = "Per-query latency (ms)"
_VERDICT_KIND = {"b_better": "good", "a_better": "bad"}


def _comparison_row(c: MetricComparison) -> tuple[object, ...]:
    """One row of the paired table."""
    return (
        c.metric,
        "higher" if c.higher_is_better else "lower",
        c.n,
        c.mean_a,
        c.mean_b,
        c.difference,
        Html(f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]"),
        c.t_p,
        c.wilcoxon_p,
        c.mcnemar_p,
        f"{c.b_wins} / {c.ties} / {c.a_wins}",
        badge(c.verdict, _VERDICT_KIND.get(c.verdict, "neutral")),
    )


def _run_fields(run: EvalRunRecord) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = [
        ("id", run.id), ("label", run.label), ("kind", run.kind), ("dataset", run.dataset),
        ("dataset fingerprint", run.dataset_fingerprint), ("config hash", run.config_hash),
        ("config name", run.config_name or ""), ("experiment", run.experiment_id or ""),
        ("variant", run.variant or ""), ("created", run.created_at),
    ]  # fmt: skip
    return fields


def _summary_row(metric: str, values: Sequence[float]) -> tuple[object, ...]:
    if not values:
        return (metric, 0, None, None, None, None, None, None, None)
    s = summarize(values)
    return (metric, s.count, s.mean, s.ci_low, s.ci_high, s.std, s.percentiles["p50"],
            s.minimum, s.maximum)  # fmt: skip


def _histograms(
    rows: Mapping[str, Mapping[str, float]], metrics: list[str], run: EvalRunRecord
) -> Html:
    figure, axes = _grid(len(metrics))
    for ax, metric in zip(axes, metrics, strict=False):
        values = _column(rows, metric)
        ax.hist(values, bins=_bins(values), color=_COLOURS[0], edgecolor="white")
        ax.set_title(_text(metric), fontsize=10)
        ax.set_ylabel("queries", fontsize=8)
    _hide_unused(axes, len(metrics))
    return image(figure, f"Per-query distribution of each metric, run {_name(run)}")


def _boxplots(
    comparison: RunComparison, quality: list[MetricComparison], a: EvalRunRecord, b: EvalRunRecord
) -> Html:
    figure, axes = _grid(len(quality))
    for ax, c in zip(axes, quality, strict=False):
        pairs = list(comparison.pairs[c.metric].values())
        data = [[x for x, _ in pairs], [y for _, y in pairs]]
        boxes = ax.boxplot(data, showmeans=True, patch_artist=True)
        for patch, colour in zip(boxes["boxes"], _COLOURS, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.45)
        ax.set_xticks([1, 2], [_text("A " + _name(a)), _text("B " + _name(b))], fontsize=8)
        ax.set_title(_text(c.metric), fontsize=10)
    _hide_unused(axes, len(quality))
    return image(figure, "Per-query scores of A and B over the shared queries (triangle: mean)")


def _differences(comparison: RunComparison, quality: list[MetricComparison]) -> Html:
    figure, axes = _grid(len(quality))
    for ax, c in zip(axes, quality, strict=False):
        diffs = np.sort([y - x for x, y in comparison.pairs[c.metric].values()])
        colours = ["#2e8b57" if (d > 0) == c.higher_is_better else "#c0392b" for d in diffs]
        ax.bar(np.arange(diffs.size), diffs, width=1.0, color=colours, linewidth=0)
        ax.axhline(0, color="#333333", linewidth=0.8)
        if math.isfinite(c.difference):
            ax.axhline(c.difference, color="#1f4e79", linestyle="--", linewidth=1)
        ax.set_title(_text(f"{c.metric}: B − A"), fontsize=10)
        ax.set_xlabel("queries, sorted by difference", fontsize=8)
    _hide_unused(axes, len(quality))
    return image(
        figure, "Per-query differences B − A, sorted (green: B better; dashed: mean difference)"
    )


def _latency_comparison(comparison: RunComparison, a: EvalRunRecord, b: EvalRunRecord) -> Html:
    pairs = list(comparison.pairs[LATENCY].values())
    series = [(_name(a), [x for x, _ in pairs]), (_name(b), [y for _, y in pairs])]
    figure, (left, right) = new_figure(10.0, 3.2, ncols=2)
    _latency_hist(left, series)
    right.boxplot([values for _, values in series], showmeans=True)
    right.set_xticks([1, 2], [_text("A " + series[0][0]), _text("B " + series[1][0])], fontsize=8)
    right.set_ylabel("ms", fontsize=8)
    timing = [
        (key, a.timing.get(key), b.timing.get(key)) for key in sorted(set(a.timing) | set(b.timing))
    ]
    return Html(table(("timing", "A", "B"), timing) + image(figure, _LAT))


def _latency_hist(ax: Axes, series: Sequence[tuple[str, Sequence[float]]]) -> None:
    everything = [v for _, values in series for v in values]
    bins = [float(e) for e in np.histogram_bin_edges(everything, bins=30)] if everything else 10
    for (name, values), colour in zip(series, _COLOURS, strict=False):
        ax.hist(values, bins=bins, alpha=0.55, color=colour, label=_text(name))
    ax.set_xlabel("ms", fontsize=8)
    ax.set_ylabel("queries", fontsize=8)
    ax.legend(fontsize=8)


def _grid(panels: int) -> tuple[Any, list[Axes]]:
    rows = max(1, math.ceil(panels / _COLUMNS))
    return new_figure(11.0, 2.8 * rows, nrows=rows, ncols=_COLUMNS)


def _hide_unused(axes: list[Axes], used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


def _bins(values: Sequence[float]) -> int:
    return min(30, max(5, len(set(values))))


def _metric_order(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    present = {key for row in rows.values() for key in row}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def _column(rows: Mapping[str, Mapping[str, float]], metric: str) -> list[float]:
    return [row[metric] for row in rows.values() if metric in row]


def _config_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    flat_a, flat_b = _flatten(a), _flatten(b)
    return [
        (key, json.dumps(flat_a.get(key)), json.dumps(flat_b.get(key)))
        for key in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(key) != flat_b.get(key)
    ]


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _name(run: EvalRunRecord) -> str:
    return run.label or run.id[:8]


def _subtitle(run: EvalRunRecord) -> str:
    return f"{run.dataset} · config {run.config_hash} · {run.created_at}"


def _fmt(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.4f}"


def _text(label: str) -> str:
    """A label for matplotlib: ``$`` would start mathtext."""
    return label.replace("$", r"\$")
