"""An experiment's analysis as one self-contained HTML page: the variants and the
sample-ratio check, each variant against the control, and plots of latency, stage times,
rates and tokens drawn from the analysis alone (its quantiles, means and intervals)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes

from ragserve.experiments.analysis import (
    STAGES,
    ExperimentAnalysis,
    MetricComparison,
    MetricSummary,
    VariantAnalysis,
    VariantComparison,
)
from ragserve.reports.html import (
    Html,
    badge,
    escape,
    image,
    new_figure,
    page,
    paragraph,
    section,
    table,
)
from ragserve.store.experiments import ExperimentRecord

_DIRECTIONS = {
    "lower_is_better": "lower is better",
    "higher_is_better": "higher is better",
    "informational": "informational",
}
_RATES = ("sources_found", "abstained", "cache_hit", "thumbs_up")


def render_experiment_report(analysis: ExperimentAnalysis, experiment: ExperimentRecord) -> str:
    """The complete HTML document; every string from the experiment is escaped."""
    subtitle = (
        f"collection {analysis.collection} · state {analysis.state} · id {analysis.experiment_id}"
        f" · control {analysis.control} · α = {analysis.alpha:g} · {analysis.total} answers"
    )
    overview = [_variants_table(analysis, experiment), _srm_note(analysis)]
    if experiment.description:
        overview.insert(0, paragraph(experiment.description))
    sections = [section("Variants", *overview)]
    sections += [_comparison_section(c) for c in analysis.comparisons]
    sections.append(section("Latency", _latency_figure(analysis), _stages_figure(analysis)))
    sections.append(section("Rates", _rates_figure(analysis)))
    sections.append(section("Tokens", _distribution_figure(analysis, ["tokens"], "tokens")))
    return page(f"Experiment {analysis.experiment}", sections, subtitle=subtitle)


def _variants_table(analysis: ExperimentAnalysis, experiment: ExperimentRecord) -> Html:
    configs = {v.name: f"{v.config_name}@{v.config_version}" for v in experiment.variants}
    rows = [
        [
            v.name + (" (control)" if v.name == analysis.control else ""),
            configs.get(v.name, v.config),
            _percent(v.share),
            _percent(v.observed_share),
            v.count,
            v.subjects,
        ]
        for v in analysis.variants
    ]
    headers = ["variant", "configuration", "share", "observed share", "answers", "subjects"]
    return table(headers, rows)


def _srm_note(analysis: ExperimentAnalysis) -> Html:
    srm = analysis.sample_ratio
    if srm.status == "not_enough_data":
        return paragraph(Html(badge("SRM: not enough data") + escape(" too few to test")))
    detail = f" χ² = {srm.chi2:.2f}, p = {srm.p_value:.3g} over {srm.unit}"
    if srm.status == "mismatch":
        detail += f" < {srm.threshold:g}: assignment or logging loses {srm.unit}; do not trust"
        detail += " the comparisons until it is explained"
        return paragraph(Html(badge("sample ratio mismatch", "bad") + escape(detail)))
    return paragraph(Html(badge("no sample ratio mismatch", "good") + escape(detail)))


def _comparison_section(comparison: VariantComparison) -> Html:
    headers = ["metric", "direction", "control", "variant", "difference [CI]", "p", "MDE"]
    rows = [
        [
            name,
            _DIRECTIONS[m.direction],
            _value(m.kind, m.control_value),
            _value(m.kind, m.variant_value),
            _difference(m),
            m.p_value,
            _amount(m.kind, m.minimum_detectable_effect),
            _verdict(m, comparison),
        ]
        for name, m in comparison.metrics.items()
    ]
    title = f"{comparison.variant} against {comparison.control}"
    return section(title, paragraph(comparison.summary), table([*headers, "verdict"], rows))


def _verdict(m: MetricComparison, comparison: VariantComparison) -> Html:
    if m.verdict == "b_better":
        return badge(f"{comparison.variant} better", "good")
    if m.verdict == "a_better":
        return badge(f"{comparison.control} better", "bad")
    return badge(m.verdict.replace("_", " "))


def _latency_figure(analysis: ExperimentAnalysis) -> Html:
    return _distribution_figure(
        analysis, ["latency_ms", "latency_ms_uncached"], "latency (ms), all and uncached answers"
    )


def _distribution_figure(analysis: ExperimentAnalysis, metrics: list[str], caption: str) -> Html:
    """Box plots from each variant's quantiles: box p25–p75, whiskers p5–p95, mean as ◆."""
    figure, axes = new_figure(4.5 * len(metrics) + 1, 3.2, ncols=len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        stats, positions, colors = [], [], []
        for position, variant in enumerate(analysis.variants, start=1):
            summary = variant.metrics[metric]
            if summary.quantiles is not None and summary.value is not None:
                q = summary.quantiles
                stats.append(
                    {
                        "med": q["p50"],
                        "q1": q["p25"],
                        "q3": q["p75"],
                        "whislo": q["p5"],
                        "whishi": q["p95"],
                        "mean": summary.value,
                        "fliers": [],
                    }
                )
                positions.append(position)
                colors.append(f"C{position - 1}")
        if stats:
            boxes = ax.bxp(
                stats, positions=positions, showmeans=True, showfliers=False, patch_artist=True
            )
            for box, color in zip(boxes["boxes"], colors, strict=True):
                box.set(facecolor=color, alpha=0.45)
        _variant_axis(ax, analysis.variants, vertical=True)
        ax.set_title(metric)
    return image(figure, f"{caption}: box p25–p75, whiskers p5–p95, ◆ mean")


def _stages_figure(analysis: ExperimentAnalysis) -> Html:
    """One stacked bar per variant: the mean of each stage over the answers that ran it."""
    figure, (ax,) = new_figure(7.0, 0.6 * len(analysis.variants) + 1.6)
    left = [0.0] * len(analysis.variants)
    for index, stage in enumerate(STAGES):
        means = [_metric_value(v.metrics.get(f"{stage}_ms")) for v in analysis.variants]
        if not any(means):
            continue
        ax.barh(range(len(means)), means, left=left, label=stage, color=f"C{index}")
        left = [a + b for a, b in zip(left, means, strict=True)]
    ax.set_xlabel("mean stage latency (ms)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    _variant_axis(ax, analysis.variants, vertical=False)
    return image(figure, "mean latency per stage (over the answers that ran the stage)")


def _rates_figure(analysis: ExperimentAnalysis) -> Html:
    """Each rate per variant with its interval as an error bar."""
    figure, (ax,) = new_figure(8.0, 3.2)
    width = 0.8 / max(1, len(analysis.variants))
    for index, variant in enumerate(analysis.variants):
        xs, ys, low, high = [], [], [], []
        for position, metric in enumerate(_RATES):
            summary = variant.metrics[metric]
            if summary.value is None or summary.ci_low is None or summary.ci_high is None:
                continue
            xs.append(position - 0.4 + width * (index + 0.5))
            ys.append(100 * summary.value)
            low.append(100 * (summary.value - summary.ci_low))
            high.append(100 * (summary.ci_high - summary.value))
        ax.errorbar(
            xs,
            ys,
            yerr=[low, high],
            fmt="o",
            capsize=3,
            label=_label(variant.name),
            color=f"C{index}",
        )
    ax.set_xticks(range(len(_RATES)), _RATES)
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return image(figure, f"rates with {1 - analysis.alpha:.0%} Wilson intervals")


def _variant_axis(ax: Axes, variants: Sequence[VariantAnalysis], *, vertical: bool) -> None:
    """Label an axis with the variants' names (positions 1… vertically, 0… horizontally)."""
    labels = [_label(v.name) for v in variants]
    if vertical:
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_xlim(0.4, len(labels) + 0.6)
    else:
        ax.set_yticks(range(len(labels)), labels)


def _label(text: str) -> str:
    """A name as matplotlib text: a ``$`` would otherwise start mathtext."""
    return text.replace("$", r"\$")


def _metric_value(summary: MetricSummary | None) -> float:
    return summary.value if summary is not None and summary.value is not None else 0.0


def _difference(m: MetricComparison) -> str:
    if m.verdict == "not_enough_data":
        return "–"
    text = f"{_signed(m.kind, m.difference)} [{_signed(m.kind, m.ci_low)}, "
    text += f"{_signed(m.kind, m.ci_high)}]"
    if m.kind == "mean" and m.relative is not None:
        text += f" ({m.relative:+.1%})"
    return text


def _value(kind: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if kind == "rate" else f"{value:.4g}"


def _signed(kind: str, value: float) -> str:
    return f"{100 * value:+.1f} pts" if kind == "rate" else f"{value:+.4g}"


def _amount(kind: str, value: float) -> str:
    if value != value:  # NaN: no test
        return "–"
    return f"{100 * value:.1f} pts" if kind == "rate" else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
