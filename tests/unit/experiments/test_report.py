"""The experiment report: self-contained, escaped, one embedded PNG per plot."""

from __future__ import annotations

import base64
import re

import numpy as np
from test_analysis import experiment, row

from ragserve.experiments.analysis import analyze
from ragserve.experiments.report import render_experiment_report
from ragserve.store.experiments import ExperimentRecord, OutcomeWithFeedback, Variant

PNG = b"\x89PNG\r\n\x1a\n"
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
PLOTS = 4  # latency distributions, stage bars, rates, tokens


def rows_for(names: tuple[str, ...], n: int = 80) -> list[OutcomeWithFeedback]:
    rng = np.random.default_rng(2)
    return [
        row(
            name,
            i,
            total_ms=float(rng.lognormal(6.0, 0.4)),
            tokens=int(rng.integers(200, 400)),
            cached=i % 5 == 0,
            feedback=("thumbs", i % 3 % 2) if i % 2 else ("score", 1 + i % 5),
        )
        for name in names
        for i in range(n)
    ]


def render(exp: ExperimentRecord, rows: list[OutcomeWithFeedback]) -> str:
    return render_experiment_report(analyze(exp, rows), exp)


def test_every_plot_is_an_embedded_png() -> None:
    """Four plots, each an <img> whose data URI decodes to a PNG."""
    html = render(experiment(), rows_for(("a", "b")))
    images = IMAGE.findall(html)
    assert len(images) == PLOTS
    assert all(base64.b64decode(data).startswith(PNG) for data in images)


def test_the_page_loads_nothing_from_the_network() -> None:
    """No http(s):// URL anywhere: no external script, style, font or image."""
    html = render(experiment(), rows_for(("a", "b")))
    assert re.search(r"https?://", html) is None
    assert "<script" not in html


def test_a_hostile_variant_name_is_escaped() -> None:
    """A variant named <script> appears only as text, in the tables and its section title."""
    variants = (Variant("a", "cfg", 1, 0.5), Variant("<script>", "<b>cfg</b>", 2, 0.5))
    exp = ExperimentRecord("e1", "t1", "x & <y>", "docs", variants, description="<i>why</i>")
    html = render(exp, rows_for(("a", "<script>")))
    assert "<script>" not in html
    assert "<b>" not in html
    assert "<i>" not in html
    assert "&lt;script&gt; against a" in html
    assert "&lt;b&gt;cfg&lt;/b&gt;@2" in html
    assert "Experiment x &amp; &lt;y&gt;" in html
    assert len(IMAGE.findall(html)) == PLOTS


def test_the_header_shows_shares_configs_and_the_srm_verdict() -> None:
    """Configured and observed shares, configuration refs, and the SRM badge."""
    html = render(experiment(), rows_for(("a", "b")))
    assert "<td>a (control)</td><td>cfg-a@1</td><td>50.0%</td><td>50.0%</td>" in html
    assert "no sample ratio mismatch" in html
    skewed = [row("a", i) for i in range(1200)] + [row("b", i) for i in range(800)]
    assert "sample ratio mismatch</span>" in render(experiment(), skewed)


def test_the_comparison_table_has_a_row_per_metric() -> None:
    """Each compared metric is a row with control, variant, difference and verdict."""
    html = render(experiment(), rows_for(("a", "b")))
    for metric in ("latency_ms", "tokens", "sources_found", "thumbs_up", "score", "cache_hit"):
        assert f"<tr><td>{metric}</td>" in html
    assert "pts [" in html  # a rate's difference in percentage points, with its interval


def test_an_empty_experiment_still_renders() -> None:
    """No outcomes at all and a math-like name ($x$): the page renders with every plot."""
    exp = experiment((("a", 0.5), ("$x$", 0.5)))
    html = render(exp, [])
    assert "not enough data" in html
    assert len(IMAGE.findall(html)) == PLOTS


def test_an_empty_variant_beside_a_full_one() -> None:
    """A third variant with no answers: its cells are dashes, its boxes and bars absent."""
    exp = experiment((("a", 0.4), ("b", 0.3), ("c", 0.3)))
    html = render(exp, rows_for(("a", "b")))
    assert "c against a" in html
    assert "variant c: not enough data" in html
    assert len(IMAGE.findall(html)) == PLOTS
