"""Loaders over the real sample PDFs and small Markdown, HTML and text inputs."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from ragserve.errors import (
    EmptyDocument,
    EncryptedDocument,
    ExtractionError,
    InputError,
    TooLarge,
    UnsupportedFileType,
)
from ragserve.ingest import load_bytes, load_path
from ragserve.ingest.sniff import HTML, MARKDOWN, PDF, TEXT
from ragserve.types import ExtractedDocument

# tests/unit/ingest/test_loaders.py -> parents[3] is the repository root; data lives beside it.
PDF_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pdfs"
ENCRYPTED = "libreoffice-writer-password.pdf"
ENCRYPTED_TWIN = "002-trivial-libre-office-writer.pdf"
SAMPLE_PDFS = [
    "002-trivial-libre-office-writer.pdf",
    "GeoTopo-komprimiert.pdf",
    "amt_handbook_sample.pdf",
    "federal-register-2020-17221.pdf",
    "google-doc-document.pdf",
    "habibi.pdf",
    "imagemagick-images.pdf",
    "libreoffice-form.pdf",
    "libreoffice-writer-password.pdf",
    "multicolumn.pdf",
    "nics-background-checks-2015-11.pdf",
    "pdflatex-4-pages.pdf",
    "scotus-transcript-p1.pdf",
    "senate-expenditures.pdf",
]
READABLE_PDFS = [name for name in SAMPLE_PDFS if name != ENCRYPTED]


@pytest.fixture(scope="module")
def pdfs() -> dict[str, ExtractedDocument]:
    """Every readable sample PDF, loaded once (GeoTopo alone takes seconds)."""
    if not PDF_DIR.is_dir():
        pytest.fail(f"sample PDFs missing: {PDF_DIR} (see ../shared/data/SOURCES.md)")
    return {name: load_path(PDF_DIR / name) for name in READABLE_PDFS}


def _pdf(*pages: list[str]) -> bytes:
    """A minimal valid PDF: one page per list, one Helvetica text line per string."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 "
               "/BaseFont /Helvetica >>"]  # fmt: skip
    kids = []
    for lines in pages:
        shown = " ".join(f"({line}) '" for line in lines)
        content = f"BT /F1 10 Tf 20 280 Td 12 TL {shown} ET"
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents {len(objects)} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _encrypted(data: bytes, user_password: str, owner_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _pypdf_page_count(name: str) -> int:
    reader = PdfReader(PDF_DIR / name, password="openpassword" if name == ENCRYPTED else None)
    return len(reader.pages)


def test_sample_folder_holds_the_fourteen_pdfs() -> None:
    """The suite covers exactly the PDFs listed in SOURCES.md."""
    expected = SAMPLE_PDFS
    assert expected == sorted(path.name for path in PDF_DIR.glob("*.pdf"))


@pytest.mark.parametrize("name", READABLE_PDFS)
def test_every_sample_pdf_loads_one_page_per_pdf_page(
    pdfs: dict[str, ExtractedDocument], name: str
) -> None:
    """Each readable PDF gives numbered pages matching pypdf's count, with some text."""
    document = pdfs[name]
    count = _pypdf_page_count(name)
    assert (PDF, list(range(1, count + 1)), True) == (
        document.mime_type,
        [page.number for page in document.pages],
        any(page.text for page in document.pages),
    )


def test_image_only_pages_are_warnings_not_errors(pdfs: dict[str, ExtractedDocument]) -> None:
    """imagemagick-images.pdf has text on four pages; the two without a text layer are reported."""
    document = pdfs["imagemagick-images.pdf"]
    expected = (
        ["Background", "Background", "Background", "", "", "Background"],
        (
            "page 4 has no extractable text (scanned image?)",
            "page 5 has no extractable text (scanned image?)",
        ),
    )
    assert expected == ([page.text for page in document.pages], document.warnings)


def test_pdf_titles_come_from_metadata_when_meaningful(pdfs: dict[str, ExtractedDocument]) -> None:
    """Metadata titles are used, NULs dropped; a bare file name ('10811.exe') is not a title."""
    titles = {name: pdfs[name].title for name in pdfs}
    expected = {
        "GeoTopo-komprimiert.pdf": "Geometrie und Topologie",
        "amt_handbook_sample.pdf": "AMT General Handbook",
        "google-doc-document.pdf": "PDF Example Document",
        "habibi.pdf": "habibi",
        "imagemagick-images.pdf": "imagemagick-images",
    }
    assert expected == {name: title for name, title in titles.items() if title is not None}


def test_multicolumn_pdf_reads_column_by_column(pdfs: dict[str, ExtractedDocument]) -> None:
    """Plain extraction keeps each column's sentences whole; ligatures and hyphens are undone."""
    text = pdfs["multicolumn.pdf"].pages[0].text
    expected_start = (
        "Two-Column Document with Lorem Ipsum\n\nYour Name\n\nJanuary 3, 2024\n\nAbstract\n\n"
        "This is a sample document with two columns filled with Lorem Ipsum text.\n\n"
        "Lorem ipsum dolor sit amet, consectetuer adipiscing elit. Ut purus elit, vestibulum ut, "
        "placerat ac, adipiscing vitae, felis."
    )
    assert expected_start == text[: len(expected_start)]


def test_wrapped_pdf_lines_become_one_paragraph(pdfs: dict[str, ExtractedDocument]) -> None:
    """The one-paragraph LibreOffice page comes out as a single paragraph."""
    text = pdfs[ENCRYPTED_TWIN].pages[0].text
    expected = (1, True, True)
    assert expected == (
        len(text.split("\n\n")),
        text.startswith("Lorem ipsum dolor sit amet, consetetur sadipscing elitr, sed diam"),
        text.endswith("takimata sanctus est Lorem ipsum dolor sit amet."),
    )


def test_encrypted_pdf_without_password_says_how_to_open_it() -> None:
    """An encrypted PDF without a password raises EncryptedDocument pointing at --password."""
    with pytest.raises(EncryptedDocument) as raised:
        load_path(PDF_DIR / ENCRYPTED)
    assert str(raised.value) == (
        f"{ENCRYPTED} is encrypted; index it with its password (ragserve ingest --password) "
        "or upload a copy without one"
    )


def test_encrypted_pdf_with_wrong_password_is_refused() -> None:
    """A wrong password raises EncryptedDocument too."""
    with pytest.raises(EncryptedDocument) as raised:
        load_path(PDF_DIR / ENCRYPTED, password="not-it")
    expected = f"the password for {ENCRYPTED} is wrong; pass the right one with --password"
    assert expected == str(raised.value)


def test_encrypted_pdf_with_password_matches_its_unencrypted_twin(
    pdfs: dict[str, ExtractedDocument],
) -> None:
    """The right user password gives exactly the text of the unencrypted twin."""
    document = load_path(PDF_DIR / ENCRYPTED, password="openpassword")
    assert (_pypdf_page_count(ENCRYPTED), pdfs[ENCRYPTED_TWIN].text) == (
        len(document.pages),
        document.text,
    )


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_pdf_raises_extraction_error(keep: float) -> None:
    """A truncated PDF fails with ExtractionError saying it may be truncated or corrupt."""
    data = (PDF_DIR / "multicolumn.pdf").read_bytes()
    with pytest.raises(ExtractionError, match="may be truncated or corrupt") as raised:
        load_bytes(data[: int(len(data) * keep)], "cut.pdf")
    assert isinstance(raised.value.__cause__, Exception)


def test_random_bytes_after_pdf_header_raise_extraction_error() -> None:
    """Garbage after a %PDF- header is reported as an unreadable PDF, not a crash."""
    garbage = bytes((i * 7919 + 13) % 256 for i in range(4096))
    with pytest.raises(ExtractionError, match=r"^junk\.pdf is not a readable PDF"):
        load_bytes(b"%PDF-1.7\n" + garbage, "junk.pdf")


def test_generated_pdf_pages_reflow_and_report_pages_without_text() -> None:
    """Wrapped, hyphenated lines join into one paragraph per page; a blank page is a warning."""
    data = _pdf(
        ["Retrieval systems index every docu-", "ment they are given before answering."],
        [],
        ["Short heading", "A second paragraph."],
    )
    document = load_bytes(data, "gen.pdf")
    expected = (
        [
            "Retrieval systems index every document they are given before answering.",
            "",
            "Short heading\n\nA second paragraph.",
        ],
        ("page 2 has no extractable text (scanned image?)",),
    )
    assert expected == ([page.text for page in document.pages], document.warnings)


def test_owner_password_only_pdf_opens_without_a_password() -> None:
    """A PDF that only restricts permissions (empty user password) needs no password."""
    data = _encrypted(_pdf(["Permissions only."]), user_password="", owner_password="owner")
    expected = "Permissions only."
    assert expected == load_bytes(data, "locked.pdf").text


def test_owner_password_also_opens_an_encrypted_pdf() -> None:
    """Either the user or the owner password decrypts."""
    data = _encrypted(_pdf(["Secret text."]), user_password="user", owner_password="owner")
    expected = ["Secret text.", "Secret text."]
    assert expected == [load_bytes(data, "s.pdf", password=p).text for p in ("user", "owner")]


def test_pdf_without_any_text_is_an_empty_document() -> None:
    """A PDF whose pages have no text layer raises EmptyDocument suggesting OCR."""
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(EmptyDocument) as raised:
        load_bytes(buffer.getvalue(), "blank.pdf")
    expected = "blank.pdf has no extractable text (a scanned PDF needs OCR first)"
    assert expected == str(raised.value)


class _RootRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: set[tuple[str, int]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.add((record.name, record.levelno))


def test_pdf_parser_noise_stays_out_of_the_logs() -> None:
    """pypdf's log records reach the root logger (the CLI's output) only as ragserve DEBUG."""
    root = logging.getLogger()
    recorder, level = _RootRecorder(), root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    data = (PDF_DIR / "002-trivial-libre-office-writer.pdf").read_bytes()
    pointer = re.search(rb"startxref\s+(\d+)", data)
    assert pointer is not None
    # A wrong xref offset: pypdf warns, then repairs the file (fontTools, when installed,
    # silences the font warnings real files used to give).
    moved = str(int(pointer.group(1)) + 7).encode()
    damaged = data[: pointer.start(1)] + moved + data[pointer.end(1) :]
    try:
        document = load_bytes(damaged, "damaged.pdf")
    finally:
        root.removeHandler(recorder)
        root.setLevel(level)
    assert {("ragserve.ingest.loaders", logging.DEBUG)} == recorder.seen
    assert "Lorem ipsum" in document.pages[0].text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "notes.txt is empty (0 bytes); nothing to index"),
        (b"  \n\t\r\n  ", "notes.txt contains no text; nothing to index"),
        ("\ufeff \u200b\n".encode(), "notes.txt contains no text; nothing to index"),
    ],
)
def test_empty_inputs_raise_empty_document(data: bytes, message: str) -> None:
    """Zero bytes, or nothing but whitespace after extraction, is an EmptyDocument."""
    with pytest.raises(EmptyDocument) as raised:
        load_bytes(data, "notes.txt")
    assert message == str(raised.value)


def test_html_without_content_is_empty() -> None:
    """An HTML page whose only text is in scripts and navigation has nothing to index."""
    page = b"<html><head><title>T</title><script>x()</script></head><body><nav>Menu</nav></body>"
    with pytest.raises(EmptyDocument):
        load_bytes(page, "page.html")


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n" + bytes(100), b"PK\x03\x04" + bytes(100), b"\x7fELF" + bytes(100)],
)
def test_binary_named_txt_is_unsupported(data: bytes) -> None:
    """Loading binary data named .txt raises UnsupportedFileType before any decoding."""
    with pytest.raises(UnsupportedFileType, match=r"^notes\.txt looks like "):
        load_bytes(data, "notes.txt")


def test_load_path_refuses_files_over_the_limit(tmp_path: Path) -> None:
    """max_bytes is checked before reading; the message gives both sizes."""
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(TooLarge) as raised:
        load_path(path, max_bytes=1000)
    expected = "big.txt is 2,048 bytes, over the 1,000-byte limit; split it or raise the limit"
    assert expected == str(raised.value)


@pytest.mark.parametrize("name", ["missing.txt", ""])
def test_load_path_reports_unreadable_paths(tmp_path: Path, name: str) -> None:
    """A missing file or a directory is an InputError naming the path."""
    with pytest.raises(InputError, match=str(tmp_path)):
        load_path(tmp_path / name)


HTML_PAGE = b"""<!DOCTYPE html><html><head><title>Pump manual</title>
<style>p { color: red }</style><script>var secret = "script text";</script></head>
<body><header><a href="/">Home</a> Site banner</header>
<nav><ul><li>Menu one</li><li>Menu two</li></ul></nav>
<main><h1>Priming the pump</h1>
<p>Open the <b>valve</b> first,
then   wait.</p><div>Close it <i>slowly</i>.<br>Check the gauge.</div>
<ul><li>Step one</li><li>Step two</li></ul>
<table><tr><th>Part</th><th>Torque</th></tr><tr><td>Bolt</td><td>12 Nm</td></tr></table>
<form><input name=q><button>Search</button></form>
<noscript>Enable JS</noscript><template><p>template text</p></template>
<svg><text>svg text</text></svg><iframe src="x"></iframe>
</main><aside>Related links</aside><footer>Copyright 2024</footer></body></html>"""


def test_html_keeps_main_text_only() -> None:
    """Scripts, styles, navigation, header, footer, forms and embeds are dropped; blocks are
    paragraphs, table rows lines."""
    document = load_bytes(HTML_PAGE, "pump.html")
    expected = (
        "Priming the pump\n\nOpen the valve first, then wait.\n\nClose it slowly.\n"
        "Check the gauge.\n\nStep one\n\nStep two\n\nPart Torque\nBolt 12 Nm"
    )
    assert (HTML, "Pump manual", expected) == (
        document.mime_type,
        document.title,
        document.pages[0].text,
    )


def test_html_articles_keep_their_own_header_and_title_falls_back_to_h1() -> None:
    """Without <main>, every <article> is content (its <header> included); no <title> -> h1."""
    page = (
        b"<html><body><header>Site</header><article><header><h1>Story</h1><p>By me</p></header>"
        b"<p>Body text.</p><footer>tags</footer></article><article><p>Second.</p></article>"
        b"</body></html>"
    )
    document = load_bytes(page, "story.html")
    expected = ("Story", "Story\n\nBy me\n\nBody text.\n\nSecond.")
    assert expected == (
        document.title,
        document.pages[0].text,
    )


def test_html_meta_charset_decodes_legacy_pages() -> None:
    """A non-UTF-8 page is decoded with the charset its <meta> declares, without a warning."""
    page = '<html><head><meta charset="koi8-r"></head><body><p>Привет, мир</p></body></html>'
    document = load_bytes(page.encode("koi8-r"), "ru.html")
    expected = ("Привет, мир", ())
    assert expected == (document.text, document.warnings)


def test_deeply_nested_html_does_not_overflow() -> None:
    """Thousands of nested elements are walked without recursion."""
    page = b"<html><body>" + b"<div>" * 5000 + b"deep" + b"</div>" * 5000 + b"</body></html>"
    expected = "deep"
    assert expected == load_bytes(page, "deep.html").text


MARKDOWN_DOC = b"""---
layout: front matter is not text
---
# Getting started

Install the [package](https://example.com/pkg "title") and run it.
Second line of the *same* paragraph.

![diagram](img/arch.png)

## Usage

- first item
- second item with `code`

```python
print("hi")
```

| Name | Value |
| ---- | ----- |
| a    | 1     |

<div align="center"><b>Inline</b> HTML block<script>alert(1)</script></div>

Hard break\\
next line &amp; entity.
"""


def test_markdown_title_prefers_front_matter() -> None:
    """A front-matter title wins over the first heading; the front matter is not text."""
    document = load_bytes(b'---\r\ntitle: "Install guide"\r\n---\r\n# Intro\r\n\r\nText.', "a.md")
    expected = ("Install guide", "Intro\n\nText.")
    assert expected == (document.title, document.text)


def test_markdown_keeps_readable_text_and_first_heading_as_title() -> None:
    """Headings, paragraphs, list items, code and tables stay; URLs, images, markup go."""
    document = load_bytes(MARKDOWN_DOC, "README.md")
    expected = (
        "Getting started\n\nInstall the package and run it. Second line of the same paragraph."
        '\n\nUsage\n\nfirst item\n\nsecond item with code\n\nprint("hi")\n\nName | Value\na | 1'
        "\n\nInline HTML block\n\nHard break\nnext line & entity."
    )
    assert (MARKDOWN, "Getting started", expected) == (
        document.mime_type,
        document.title,
        document.pages[0].text,
    )


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-8"])
def test_text_with_bom_decodes(encoding: str) -> None:
    """UTF-16 (either byte order) and UTF-8 text with a BOM load as plain text, BOM dropped."""
    data = "\ufeffGr\u00fc\u00dfe aus K\u00f6ln \u2013 \u4e2d\u6587.\r\n\r\nZweiter Absatz.".encode(
        encoding
    )
    document = load_bytes(data, "greeting.txt")
    expected = (TEXT, "Gr\u00fc\u00dfe aus K\u00f6ln \u2013 \u4e2d\u6587.\n\nZweiter Absatz.", ())
    assert expected == (
        document.mime_type,
        document.pages[0].text,
        document.warnings,
    )


def test_non_utf8_text_loads_with_a_warning() -> None:
    """Legacy 8-bit text is decoded and the guessed encoding is reported as a warning."""
    document = load_bytes("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e.".encode("cp1252"), "menu.txt")
    expected = ("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e.", 1)
    assert expected == (
        document.pages[0].text,
        len(document.warnings),
    )
