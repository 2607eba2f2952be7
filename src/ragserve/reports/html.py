"""Self-contained HTML pages: inline CSS, matplotlib figures embedded as base64 PNG, every
string escaped.

A page opens from disk with nothing else running and no network: no external CSS, script,
font or image, and a Content-Security-Policy that forbids loading any. Build a page from
fragments: the helpers escape any plain ``str`` (and numbers, formatted) they are given and
pass :class:`Html`, markup they produced, through unchanged::

    fig, ax = new_figure()
    ax.hist(values)
    html = page("Report", [section("Latency", paragraph(note), image(fig, "latency"))])
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "Html",
    "badge",
    "cell",
    "code_block",
    "escape",
    "figure_data_uri",
    "image",
    "new_figure",
    "page",
    "paragraph",
    "section",
    "table",
]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d8dce4;padding-bottom:.2rem}.sub{color:#5a6272;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8dce4;padding:.25rem .55rem;text-align:right}
th{background:#f2f4f8}td:first-child,th:first-child{text-align:left}
figure{margin:.8rem 0}figure img{max-width:100%;height:auto}
figcaption{color:#5a6272;font-size:.9rem}
pre{background:#f6f7f9;padding:.6rem;overflow:auto;font-size:12px}
.badge{border-radius:3px;padding:.05rem .4rem;font-size:.85rem;white-space:nowrap}
.good{background:#d9f2e1;color:#145a2c}.bad{background:#fadbd8;color:#7b1c12}
.neutral{background:#eceef2;color:#3b4252}
"""
# Nothing may be fetched or run: inline styles and data: images only.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Html(str):
    """Markup that is safe to embed as is; any plain ``str`` is escaped instead."""

    __slots__ = ()


def escape(value: object) -> Html:
    """``value`` as HTML text: :class:`Html` unchanged, numbers formatted, the rest escaped."""
    if isinstance(value, Html):
        return value
    if isinstance(value, float):
        return Html(_number(value))
    return Html(html.escape(str(value), quote=True))


def cell(value: object, digits: int = 4) -> Html:
    """A table value: floats to ``digits`` significant decimals, ``None`` and NaN as "–"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Html("–")
    if isinstance(value, float):
        return Html(_number(value, digits))
    return escape(value)


def paragraph(text: object) -> Html:
    return Html(f"<p>{escape(text)}</p>")


def code_block(text: str) -> Html:
    return Html(f"<pre>{escape(text)}</pre>")


def badge(text: str, kind: str = "neutral") -> Html:
    """A coloured label; ``kind`` is ``good``, ``bad`` or ``neutral``."""
    css = kind if kind in ("good", "bad") else "neutral"
    return Html(f'<span class="badge {css}">{escape(text)}</span>')


def table(headers: Sequence[object], rows: Iterable[Sequence[object]]) -> Html:
    """A table; each value goes through :func:`cell`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def new_figure(
    width: float = 9.0, height: float = 3.2, *, nrows: int = 1, ncols: int = 1
) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (no GUI backend, no pyplot state) and its axes, row by
    row."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, [ax for row in axes for ax in row]


def figure_data_uri(figure: Figure, *, dpi: int = 100) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image(figure: Figure, caption: str, *, dpi: int = 100) -> Html:
    """The figure embedded as PNG, captioned (the caption is also its alt text)."""
    src = figure_data_uri(figure, dpi=dpi)
    text = escape(caption)
    return Html(f'<figure><img src="{src}" alt="{text}"><figcaption>{text}</figcaption></figure>')


def section(title: str, *parts: Html) -> Html:
    return Html(f"<section><h2>{escape(title)}</h2>{''.join(map(escape, parts))}</section>")


def page(title: str, sections: Sequence[Html], *, subtitle: str = "") -> str:
    """A complete HTML document: ``title`` as heading, an optional subtitle, the sections."""
    sub = f'<p class="sub">{escape(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{escape(title)}</h1>{sub}{''.join(map(escape, sections))}</body></html>\n"
    )


def _number(value: float, digits: int = 4) -> str:
    if math.isnan(value):
        return "–"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"
