"""Text normalisation shared by the loaders."""

from __future__ import annotations

import pytest

from ragserve.ingest.normalize import clean_title, normalize_text, reflow_lines


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\x00b\x07c\u200bd\ufeffe\u00adf", "abcdef"),
        ("cafe\u0301", "caf\u00e9"),
        ("\ufb01le \ufb02ow o\ufb03ce", "file flow office"),
        ("many    spaces\tand\u00a0nbsp", "many spaces and nbsp"),
        ("  line one  \r\n  line two \r\n\r\n\r\n\r\npara two  ", "line one\nline two\n\npara two"),
        ("page one\x0cpage two", "page one\n\npage two"),
        ("\u200d\u200c kept joiners", "\u200d\u200c kept joiners"),
        ("icon\U000f03d9 glyph\ue000", "icon glyph"),
    ],
)
def test_normalize_text_cleans_invisible_characters_and_whitespace(raw: str, expected: str) -> None:
    """Controls, format characters and ligatures go; NFC applies; paragraphs are one blank line."""
    assert expected == normalize_text(raw)


def test_normalize_text_is_idempotent() -> None:
    """Normalising twice changes nothing."""
    once = normalize_text("  A\x00 b\r\n\r\n\r\nc\u00a0 d ", reflow=True)
    assert once == normalize_text(once, reflow=True)


def test_reflow_joins_wrapped_lines_and_hyphenation() -> None:
    """Full lines continue their paragraph, hyphenated words are rejoined, short lines end it."""
    raw = (
        "Heading\n"
        "This is a long line of wrapped text about infor-\n"
        "mation retrieval systems that keeps going on and\n"
        "ends here.\n"
        "Next paragraph starts after a short line and it\n"
        "ends."
    )
    expected = (
        "Heading\n\n"
        "This is a long line of wrapped text about information retrieval systems that keeps "
        "going on and ends here.\n\n"
        "Next paragraph starts after a short line and it ends."
    )
    assert expected == reflow_lines(raw)


def test_reflow_keeps_blank_lines_and_joins_drop_capitals() -> None:
    """Existing blank lines stay paragraph breaks; a lone capital joins the word it starts."""
    expected = "The nut holds.\n\nSecond."
    assert expected == reflow_lines("T\nhe nut holds.\n\nSecond.")


def test_reflow_keeps_hyphens_before_capitals() -> None:
    """A dash before a capitalised word is not hyphenation (e.g. a compound name)."""
    expected = "a long enough line ending with Anglo- Saxon"
    assert expected == reflow_lines("a long enough line ending with Anglo-\nSaxon")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Geometrie und Topologie", "Geometrie und Topologie"),
        ("imagemagick-images\x00", "imagemagick-images"),
        ("10811.exe", None),
        ("Microsoft Word - report.docx", None),
        ("Microsoft Word - Annual Report", "Annual Report"),
        ("  ", None),
        (None, None),
        (42, None),
    ],
)
def test_clean_title_drops_empty_and_file_name_titles(raw: object, expected: str | None) -> None:
    """Metadata titles are cleaned; empty values and bare file names are not titles."""
    assert expected == clean_title(raw)
