"""The self-contained HTML page builder: escaping, embedded figures, no external assets."""

from __future__ import annotations

import base64

from ragserve.reports.html import (
    Html,
    badge,
    cell,
    figure_data_uri,
    image,
    new_figure,
    page,
    paragraph,
    section,
    table,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plain_strings_are_escaped_and_markup_passes() -> None:
    """A str with markup is shown as text; Html from the helpers is kept as is."""
    html = section("<b>title</b>", paragraph("<script>x()</script>"), badge("ok", "good"))
    assert "&lt;b&gt;title&lt;/b&gt;" in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html
    assert "<script" not in html
    assert '<span class="badge good">ok</span>' in html


def test_table_cells_format_numbers_and_missing_values() -> None:
    """Floats get 4 decimals (tiny ones scientific); None and NaN show as a dash."""
    html = table(("a", "b", "c", "d"), [(0.123456, None, float("nan"), 0.0000123)])
    assert "<td>0.1235</td><td>–</td><td>–</td><td>1.23e-05</td>" in html
    assert cell("<i>") == "&lt;i&gt;"
    assert cell(Html("<i>x</i>")) == "<i>x</i>"


def test_figures_are_embedded_as_png_data_uris() -> None:
    """figure_data_uri returns a base64 PNG; image wraps it with an escaped caption."""
    figure, (ax,) = new_figure(3, 2)
    ax.plot([1, 2, 3], [3, 1, 2])
    uri = figure_data_uri(figure)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    html = image(figure, 'a "quoted" <caption>')
    assert 'alt="a &quot;quoted&quot; &lt;caption&gt;"' in html


def test_new_figure_returns_every_axis_of_the_grid() -> None:
    """nrows × ncols axes, row by row."""
    _, axes = new_figure(4, 4, nrows=2, ncols=3)
    assert len(axes) == 6


def test_a_page_loads_nothing_from_elsewhere() -> None:
    """Inline style, a CSP forbidding fetches, an escaped title, no http(s) URL."""
    html = page("Q&A <report>", [section("s", paragraph("p"))], subtitle="sub")
    assert html.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in html
    assert "<title>Q&amp;A &lt;report&gt;</title>" in html
    assert "http://" not in html
    assert "https://" not in html
    assert "<link" not in html
