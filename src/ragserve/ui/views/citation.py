"""A cited source opened in a dialog: the page's text with the passage marked, and the
original file to download."""

from __future__ import annotations

import html

import streamlit as st

from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.models import Source
from ragserve.ui.views.downloads import original_button

CONTEXT = 600
"""Characters of the page shown either side of the cited passage (the rest in an expander)."""
PASSAGE = "cited-passage"
PASSAGE_IN_PAGE = "cited-passage-in-page"
PAGE_STYLE = (
    "white-space: pre-wrap; max-height: 55vh; overflow-y: auto; padding: 0.75rem 1rem; "
    "border: 1px solid rgba(128,128,128,0.35); border-radius: 0.5rem; line-height: 1.5"
)


def marked(text: str, start: int, end: int, *, context: int | None = None, test_id: str) -> str:
    """``text`` as escaped HTML with ``text[start:end]`` in a ``<mark>`` (offsets kept in
    bounds); with ``context``, only that many characters either side, cut at a space."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end <= start:
        return html.escape(text if context is None else text[: 2 * context])
    before, passage, after = text[:start], text[start:end], text[end:]
    if context is not None:
        before = _tail(before, context)
        after = _head(after, context)
    return (
        f"{html.escape(before)}<mark data-testid='{test_id}'>{html.escape(passage)}</mark>"
        f"{html.escape(after)}"
    )


def _tail(text: str, size: int) -> str:
    """The last ``size`` characters without a leading partial word."""
    if len(text) <= size:
        return text
    cut = text[-size:]
    if not text[-size - 1].isspace() and " " in cut:
        cut = cut[cut.find(" ") + 1 :]
    return "…" + cut


def _head(text: str, size: int) -> str:
    """The first ``size`` characters without a trailing partial word."""
    if len(text) <= size:
        return text
    cut = text[:size]
    if not text[size].isspace() and " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut + "…"


@st.dialog("Source", width="large")
def open_source(client: ApiClient, collection: str, source: Source) -> None:
    page_number = max(source.page, 1)
    st.subheader(source.label)
    try:
        page = client.page_text(collection, source.document_id, page_number)
    except ApiError as exc:
        st.error(exc.friendly())
        st.markdown(f"> {source.snippet}")
        return
    where = f"Page {page.page} of {page.page_count}" if page.page_count > 1 else "The document"
    st.caption(f"{page.name} — {where}. The cited passage is highlighted.")
    if not page.exact:
        st.caption("Rebuilt from the indexed passages: the original could not be re-read.")
    excerpt = marked(page.text, source.start, source.end, context=CONTEXT, test_id=PASSAGE)
    st.html(f"<div style='{PAGE_STYLE}'>{excerpt}</div>")
    with st.expander(f"Whole page {page.page}" if page.page_count > 1 else "Whole text"):
        whole = marked(page.text, source.start, source.end, test_id=PASSAGE_IN_PAGE)
        st.html(f"<div style='{PAGE_STYLE}'>{whole}</div>")
    original_button(
        client, collection, page.document_id, page.source, page.mime_type,
        key=f"original-{page.document_id}",
    )  # fmt: skip
