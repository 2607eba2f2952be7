"""Content sniffing: what a file is, decided from its bytes; the name only refines text."""

from __future__ import annotations

import codecs
import importlib
import re

from ragserve.errors import UnsupportedFileType

PDF = "application/pdf"
MARKDOWN = "text/markdown"
HTML = "text/html"
TEXT = "text/plain"
SUPPORTED_TYPES = (PDF, MARKDOWN, HTML, TEXT)

_SUPPORTED_NAMES = "PDF, Markdown, HTML and plain text (UTF-8 or UTF-16 with a BOM)"
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mkdn")
_HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office file (DOC/XLS/PPT)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\x00asm", "a WebAssembly module"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"OggS\x00", "an Ogg media file"),
    (b"fLaC\x00", "a FLAC audio file"),
    (b"ID3\x03", "an MP3 audio file"),
    (b"ID3\x04", "an MP3 audio file"),
    (b"%!PS", "a PostScript file"),
    (b"{\\rtf", "an RTF document"),
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HTML_MARKERS = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
# C0 controls other than \t \n \v \f \r and ESC; text has almost none of them.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_CONTROL_BYTES = bytes(range(0x20)).translate(None, b"\t\n\x0b\x0c\r\x1b") + b"\x7f"
_NON_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_MAX_CONTROL_SHARE = 0.05
_SAMPLE = 8192
_MIN_GUESS_BYTES = 1024


def sniff(data: bytes, filename: str | None = None) -> str:
    """The MIME type of ``data``: one of :data:`SUPPORTED_TYPES`.

    Content decides first (PDF magic in the first KiB, HTML markers, known binary signatures,
    NUL or control bytes); ``filename``'s extension only tells Markdown or HTML from plain text.
    Raises :class:`UnsupportedFileType` naming what the data looks like.
    """
    if b"%PDF-" in data[:1024]:
        return PDF
    what = _binary_kind(data)
    if what is not None:
        name = filename or "the file"
        raise UnsupportedFileType(
            f"{name} looks like {what}; supported types are {_SUPPORTED_NAMES}"
        )
    head = _decode_head(data)
    if _HTML_MARKERS.search(head[:1024]):
        return HTML
    suffix = _suffix(filename)
    if suffix in _MARKDOWN_SUFFIXES:
        return MARKDOWN
    if suffix in _HTML_SUFFIXES:
        return HTML
    return TEXT


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Decode text bytes; returns the text and a warning when the encoding had to be guessed.

    A BOM (UTF-8/16/32) is authoritative; otherwise UTF-8, then charset-normalizer's guess when
    that package is installed and the text is long enough to guess from, then Windows-1252
    (binary data never gets here: sniff rejects it).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    # A few words are too little evidence: "crème" reads as Windows-1250 "crčme" just as well.
    guessed = _guess_with_charset_normalizer(data) if len(data) >= _MIN_GUESS_BYTES else None
    if guessed is not None:
        return guessed
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # the five bytes cp1252 leaves undefined
    return text, "text is not valid UTF-8; decoded it as Windows-1252"


def _binary_kind(data: bytes) -> str | None:
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            return _refine_zip(data) if what == "a ZIP archive" else what
    if data.startswith(b"BZh") and data[4:10] == b"1AY&SY":
        return "a bzip2 archive"
    if data[4:8] == b"ftyp":
        return "an MP4/QuickTime media file"
    if data.startswith(b"RIFF") and data[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return "a RIFF media file (WebP/WAV/AVI)"
    if data.startswith(b"MZ") and b"\x00" in data[:_SAMPLE]:
        return "a Windows executable"
    if any(data.startswith(bom) for bom, _ in _BOMS):
        text = _decode_head(data)
        controls = len(_CONTROL_CHARS.findall(text))
        return "binary data" if controls > _MAX_CONTROL_SHARE * max(len(text), 1) else None
    if b"\x00" in data:
        return "binary data (it contains NUL bytes)"
    sample = data[:_SAMPLE]
    controls = len(sample.translate(None, _NON_CONTROL_BYTES))
    if controls > _MAX_CONTROL_SHARE * len(sample):
        return "binary data (many control bytes)"
    return None


def _refine_zip(data: bytes) -> str:
    head = data[:4096]
    if b"word/" in head:
        return "a Word document (DOCX)"
    if b"xl/" in head:
        return "an Excel workbook (XLSX)"
    if b"ppt/" in head:
        return "a PowerPoint presentation (PPTX)"
    if b"mimetypeapplication/epub+zip" in head:
        return "an EPUB book"
    if b"mimetypeapplication/vnd.oasis.opendocument" in head:
        return "an OpenDocument file"
    return "a ZIP archive"


def _decode_head(data: bytes) -> str:
    sample = data[:_SAMPLE]
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return sample[len(bom) :].decode(encoding, errors="replace")
    return sample.decode("utf-8", errors="replace")


def _suffix(filename: str | None) -> str:
    if not filename:
        return ""
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > filename.replace("\\", "/").rfind("/") else ""


def _guess_with_charset_normalizer(data: bytes) -> tuple[str, str] | None:
    try:
        charset_normalizer = importlib.import_module("charset_normalizer")
    except ImportError:
        return None
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        return None
    return str(best), f"text is not valid UTF-8; decoded it as {best.encoding}"
