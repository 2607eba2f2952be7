"""Content sniffing and text decoding."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from ragserve.errors import UnsupportedFileType
from ragserve.ingest.sniff import HTML, MARKDOWN, PDF, TEXT, decode_text, sniff


def _docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", None, PDF),
        (b"garbage before the header\n%PDF-1.4\n", "scan.bin", PDF),
        (b"%PDF-1.4\n", "notes.txt", PDF),
        (b"<!DOCTYPE html><html><body>x</body></html>", None, HTML),
        (b"  \n<HTML lang=en><p>x</p></HTML>", "page.txt", HTML),
        (b"<p>a fragment</p>", "page.htm", HTML),
        (b"# Title\n\nBody", "README.md", MARKDOWN),
        (b"# Title\n\nBody", "notes.MARKDOWN", MARKDOWN),
        (b"# Title\n\nBody", None, TEXT),
        (b"# Title\n\nBody", "dir.md/notes", TEXT),
        (b"plain words\n", "notes.txt", TEXT),
        ("caf\u00e9 na\u00efve".encode(), None, TEXT),
        ("\ufeffhello UTF-16".encode("utf-16-le"), "u16.txt", TEXT),
        ("\ufeff<html><body>x</body></html>".encode("utf-16-be"), None, HTML),
    ],
)
def test_sniff_decides_from_content_and_refines_text_by_extension(
    data: bytes, filename: str | None, expected: str
) -> None:
    """Magic bytes and HTML markers decide; the extension only picks Markdown or HTML for text."""
    assert expected == sniff(data, filename)


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF image"),
        (gzip.compress(b"hello" * 100), "a gzip archive"),
        (_docx_bytes(), "a Word document (DOCX)"),
        (b"\x7fELF\x02\x01\x01" + bytes(32), "an ELF executable"),
        (b"text with a NUL\x00 in the middle", "binary data (it contains NUL bytes)"),
        (bytes(range(1, 32)) * 20, "binary data (many control bytes)"),
        (b"{\\rtf1\\ansi hello}", "an RTF document"),
    ],
)
def test_sniff_rejects_binary_even_when_named_txt(data: bytes, looks_like: str) -> None:
    """A binary file named .txt is refused with what it looks like and the supported types."""
    with pytest.raises(UnsupportedFileType) as raised:
        sniff(data, "notes.txt")
    expected = (
        f"notes.txt looks like {looks_like}; supported types are PDF, Markdown, HTML and "
        "plain text (UTF-8 or UTF-16 with a BOM)"
    )
    assert expected == str(raised.value)


def test_sniff_accepts_text_starting_like_a_weak_signature() -> None:
    """Prose that happens to start with 'ID3' or 'BZh' is still text."""
    expected = [TEXT, TEXT]
    assert expected == [sniff(b"ID3 tags store MP3 metadata."), sniff(b"BZh is a prefix.")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain ascii", "plain ascii"),
        ("\ufeffwith UTF-8 BOM \u00e9".encode(), "with UTF-8 BOM \u00e9"),
        ("\ufeffUTF-16 LE \u00e9\u4e2d".encode("utf-16-le"), "UTF-16 LE \u00e9\u4e2d"),
        ("\ufeffUTF-16 BE \u00e9\u4e2d".encode("utf-16-be"), "UTF-16 BE \u00e9\u4e2d"),
        ("\ufeffUTF-32 \u00e9".encode("utf-32-le"), "UTF-32 \u00e9"),
    ],
)
def test_decode_text_honours_bom_and_utf8(data: bytes, expected: str) -> None:
    """A BOM decides the encoding and is dropped; BOM-less text is UTF-8 without a warning."""
    assert (expected, None) == decode_text(data)


def test_decode_text_falls_back_with_a_warning() -> None:
    """Bytes that are not UTF-8 are still decoded, and the guess is reported."""
    text, warning = decode_text(
        "Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9.".encode("cp1252")
    )
    expected = ("Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9.", True)
    assert expected == (
        text,
        warning is not None and warning.startswith("text is not valid UTF-8; decoded it as"),
    )
