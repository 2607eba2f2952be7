"""HTML reports of a run and of a comparison: valid, self-contained, with plots, escaped."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from ragserve.eval.compare import compare_runs
from ragserve.eval.report import comparison_report, run_report
from ragserve.store.experiments import EvalRunRecord

VOID = {"meta", "img", "br", "hr", "link", "input"}
EVIL = "<script>alert(1)</script>"
EVIL_LABEL = f"hybrid {EVIL}"
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


class TagBalance(HTMLParser):
    """Records tags opened and closed out of order, and every attribute URL."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def check_html(html: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(html)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def record(run_id: str, label: str, shift: float, *, binary: bool = False) -> EvalRunRecord:
    per_query = {}
    for i in range(40):
        score = min(1.0, max(0.0, (i % 10) / 10 + shift))
        row = {"ndcg@10": score, "latency_ms": 5.0 + i % 7 + shift * 10}
        if binary:
            row["exact_match"] = float(i % 3 == 0 or shift > 0)
        per_query[f"q{i}"] = row
    return EvalRunRecord(
        id=run_id,
        tenant="default",
        kind="beir",
        dataset="scifact/test",
        dataset_fingerprint="0123456789abcdef",
        config_hash="c" * 16,
        config={"retrieve": {"mode": "hybrid"}, "rerank": {"name": "none"}},
        metrics={"ndcg@10": 0.5},
        per_query=per_query,
        timing={"index_seconds": 1.0, "latency_p50_ms": 5.0},
        label=label,
        created_at="2025-01-01T00:00:00+00:00",
    )


@pytest.fixture
def runs() -> tuple[EvalRunRecord, EvalRunRecord]:
    a = record("a" * 32, EVIL_LABEL, 0.0, binary=True)
    b = record("b" * 32, "mmr", 0.1, binary=True)
    b.config["rerank"] = {"name": "mmr"}
    return a, b


def test_a_comparison_report_is_valid_self_contained_html_with_plots(
    runs: tuple[EvalRunRecord, EvalRunRecord],
) -> None:
    """Balanced tags, PNG images as data URIs only, no http(s) asset."""
    a, b = runs
    html = comparison_report(compare_runs(a, b), a, b)
    parser = check_html(html)
    images = IMAGE.findall(html)
    assert len(images) >= 3  # distributions, paired differences, latency
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert all(url.startswith("data:image/png;base64,") for url in parser.urls)
    assert not re.search(r"https?://", html)


def test_a_comparison_report_shows_the_table_and_the_config_change(
    runs: tuple[EvalRunRecord, EvalRunRecord],
) -> None:
    """Every metric's row with p-values and verdict, and what differs between configs."""
    a, b = runs
    html = comparison_report(compare_runs(a, b), a, b)
    for text in ("ndcg@10", "exact_match", "latency_ms", "Wilcoxon p", "McNemar p", "b_better"):
        assert text in html
    assert "rerank.name" in html
    assert "&quot;mmr&quot;" in html


def test_labels_are_escaped(runs: tuple[EvalRunRecord, EvalRunRecord]) -> None:
    """A label holding a script tag appears as text, never as markup."""
    a, b = runs
    for html in (comparison_report(compare_runs(a, b), a, b), run_report(a)):
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_run_report_has_metrics_distributions_and_latency(
    runs: tuple[EvalRunRecord, EvalRunRecord],
) -> None:
    """The run's figures, a per-query summary with intervals, and two embedded plots."""
    a, _ = runs
    html = run_report(a)
    check_html(html)
    assert len(IMAGE.findall(html)) == 2
    for text in ("Per-query metrics", "95% CI low", "Latency", "index_seconds", "hybrid"):
        assert text in html
