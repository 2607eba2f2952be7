"""The cited passage marked in its page: escaped, in bounds, with context cut at spaces."""

from __future__ import annotations

from ragserve.ui.views.citation import marked

PAGE = "Intro words here. The <b>bell</b> rings at noon & dusk. Closing words follow."


def test_the_passage_is_marked_and_everything_escaped() -> None:
    start = PAGE.index("The")
    end = PAGE.index("dusk.") + len("dusk.")
    assert marked(PAGE, start, end, test_id="p") == (
        "Intro words here. <mark data-testid='p'>The &lt;b&gt;bell&lt;/b&gt; rings at noon "
        "&amp; dusk.</mark> Closing words follow."
    )


def test_context_is_cut_at_a_space_with_an_ellipsis() -> None:
    start = PAGE.index("The")
    end = PAGE.index("dusk.") + len("dusk.")
    assert marked(PAGE, start, end, context=8, test_id="p") == (
        "…here. <mark data-testid='p'>The &lt;b&gt;bell&lt;/b&gt; rings at noon &amp; dusk.</mark>"
        " Closing…"
    )


def test_offsets_outside_the_text_are_clamped_and_an_empty_span_marks_nothing() -> None:
    assert marked("abc", -5, 99, test_id="p") == "<mark data-testid='p'>abc</mark>"
    assert marked("a < b", 3, 3, test_id="p") == "a &lt; b"
