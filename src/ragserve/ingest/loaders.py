"""Loaders: bytes or a path in, normalised text per page out (PDF, Markdown, HTML, plain text).

Each format's library exceptions are translated here, once, into the ``InputError`` tree.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError, PyPdfError
from selectolax.lexbor import LexborHTMLParser, LexborNode

from ragserve.errors import EmptyDocument, EncryptedDocument, ExtractionError, InputError, TooLarge
from ragserve.ingest.normalize import clean_title, normalize_text
from ragserve.ingest.sniff import HTML, MARKDOWN, PDF, TEXT, decode_text, sniff
from ragserve.types import ExtractedDocument, Page

_log = logging.getLogger(__name__)

# pypdf reports malformed input through assorted built-in exceptions as well as its own.
_PDF_ERRORS = (
    PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    AssertionError,
    RecursionError,
    NotImplementedError,
    OverflowError,
    OSError,
    struct.error,
    zlib.error,
)
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*([\"']?)(.+?)\1[ \t]*$", re.MULTILINE)
_HTML_DROP = (
    "head, script, style, noscript, template, nav, footer, aside, form, svg, iframe, "
    "button, select, [hidden]"
)
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hr", "html", "legend", "li", "main", "ol", "p", "pre",
        "section", "summary", "table", "ul",
    }
)  # fmt: skip
_HTML_INLINE_SEPARATORS = {"tr": ("", "\n"), "td": (" ", " "), "th": (" ", " "), "br": ("\n", "")}
_WHITESPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)

_Loader = Callable[[bytes, str, str | None], ExtractedDocument]


def load_path(
    path: Path, *, password: str | None = None, max_bytes: int | None = None
) -> ExtractedDocument:
    """Load the file at ``path``; refuses files over ``max_bytes`` before reading them."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise InputError(f"{path} is a directory; pass a file")
        if max_bytes is not None and size > max_bytes:
            raise TooLarge(_too_large(path.name, size, max_bytes))
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return load_bytes(data, path.name, password=password)


def load_bytes(
    data: bytes,
    filename: str | None = None,
    *,
    password: str | None = None,
    max_bytes: int | None = None,
) -> ExtractedDocument:
    """Detect the type of ``data`` (see :func:`sniff`) and extract its text.

    Raises ``UnsupportedFileType``, ``TooLarge``, ``EmptyDocument``, ``ExtractionError`` or
    ``EncryptedDocument`` (a PDF with no ``password`` or a wrong one).
    """
    name = filename or "the document"
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLarge(_too_large(name, len(data), max_bytes))
    if not data:
        raise EmptyDocument(f"{name} is empty (0 bytes); nothing to index")
    mime_type = sniff(data, filename)
    document = _LOADERS[mime_type](data, name, password)
    if not any(page.text for page in document.pages):
        raise EmptyDocument(f"{name} contains no text; nothing to index")
    return document


def _too_large(name: str, size: int, limit: int) -> str:
    return f"{name} is {size:,} bytes, over the {limit:,}-byte limit; split it or raise the limit"


def _load_pdf(data: bytes, name: str, password: str | None) -> ExtractedDocument:
    _quiet_pypdf()
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            _unlock(reader, name, password)
        pages = list(reader.pages)
        title = clean_title(reader.metadata.title if reader.metadata else None)
    except DependencyError as exc:
        # e.g. AES encryption without the ``cryptography`` package
        raise ExtractionError(
            f"{name} needs a library pypdf could not load ({exc}); install it"
        ) from exc
    except _PDF_ERRORS as exc:
        raise ExtractionError(
            f"{name} is not a readable PDF ({type(exc).__name__}: {exc}); it may be truncated "
            "or corrupt: re-export or re-download it"
        ) from exc
    texts, warnings, failures = _pdf_page_texts(pages)
    if not any(texts):
        if pages and failures == len(pages):
            raise ExtractionError(f"{name}: no page could be read; {warnings[0]}")
        raise EmptyDocument(f"{name} has no extractable text (a scanned PDF needs OCR first)")
    numbered = tuple(Page(number, text) for number, text in enumerate(texts, start=1))
    return ExtractedDocument(numbered, PDF, title=title, warnings=tuple(warnings))


def _unlock(reader: PdfReader, name: str, password: str | None) -> None:
    # The empty password opens files that only restrict permissions (owner password).
    if reader.decrypt(password or ""):
        return
    if password is None:
        raise EncryptedDocument(
            f"{name} is encrypted; index it with its password (ragserve ingest --password) "
            "or upload a copy without one"
        )
    raise EncryptedDocument(f"the password for {name} is wrong; pass the right one with --password")


def _pdf_page_texts(pages: Sequence[PageObject]) -> tuple[list[str], list[str], int]:
    """Normalised text of each page, warnings about pages without text, and failures."""
    texts: list[str] = []
    warnings: list[str] = []
    failures = 0
    for number, page in enumerate(pages, start=1):
        try:
            # "plain" reads multi-column pages column by column; "layout" interleaves columns.
            raw = page.extract_text(extraction_mode="plain")
        except (DependencyError, *_PDF_ERRORS) as exc:
            warnings.append(f"page {number} could not be read ({type(exc).__name__}: {exc})")
            failures += 1
            raw = ""
        else:
            if not raw.strip():
                warnings.append(f"page {number} has no extractable text (scanned image?)")
        texts.append(normalize_text(raw, reflow=True))
    return texts, warnings, failures


class _DebugRelay(logging.Handler):
    """Re-emits pypdf's log records at DEBUG under ragserve's logger, so the CLI stays quiet."""

    def emit(self, record: logging.LogRecord) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("pypdf: %s", record.getMessage())


def _quiet_pypdf() -> None:
    logger = logging.getLogger("pypdf")
    if not any(isinstance(handler, _DebugRelay) for handler in logger.handlers):
        logger.addHandler(_DebugRelay())
        logger.propagate = False


def _load_markdown(data: bytes, name: str, password: str | None) -> ExtractedDocument:
    text, warning = decode_text(data)
    text = text.replace("\r\n", "\n")
    front_matter = _FRONT_MATTER.match(text)
    declared = _FRONT_MATTER_TITLE.search(front_matter.group()) if front_matter else None
    blocks, heading = _markdown_blocks(
        _MARKDOWN.parse(text[front_matter.end() :] if front_matter else text)
    )
    title = clean_title(declared.group(2)) if declared else heading
    return _single_page(normalize_text("\n\n".join(blocks)), MARKDOWN, title, warning)


def _markdown_blocks(tokens: list[Token]) -> tuple[list[str], str | None]:
    blocks: list[str] = []
    title: str | None = None
    rows: list[str] = []
    cells: list[str] | None = None
    in_heading = False
    for token in tokens:
        kind = token.type
        if kind == "inline":
            text = _markdown_inline(token.children or [])
            if cells is not None:
                cells.append(text)
            else:
                blocks.append(text)
            if in_heading and title is None:
                title = normalize_text(text) or None
        elif kind in ("heading_open", "heading_close"):
            in_heading = kind == "heading_open"
        elif kind in ("fence", "code_block"):
            blocks.append(token.content)
        elif kind == "html_block":
            blocks.append(_html_fragment_text(token.content))
        elif kind == "tr_open":
            cells = []
        elif kind == "tr_close" and cells is not None:
            rows.append(" | ".join(cells))
            cells = None
        elif kind == "table_close":
            blocks.append("\n".join(rows))
            rows = []
    return blocks, title


def _markdown_inline(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
    # link/emphasis markup, raw inline HTML and images carry no readable text of their own
    return "".join(parts)


def _load_html(data: bytes, name: str, password: str | None) -> ExtractedDocument:
    text, warning = _decode_html(data)
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("head > title")
    title = clean_title(title_node.text()) if title_node is not None else None
    roots = _html_content_roots(tree)
    if title is None:
        heading = next((h for root in roots for h in root.css("h1")), None)
        title = clean_title(heading.text()) if heading is not None else None
    body = normalize_text("\n\n".join(_html_text(root) for root in roots))
    return _single_page(body, HTML, title, warning)


def _decode_html(data: bytes) -> tuple[str, str | None]:
    """Like :func:`decode_text`, but a ``<meta charset>`` beats guessing for non-UTF-8 pages."""
    text, warning = decode_text(data)
    declared = _META_CHARSET.search(data[:4096]) if warning else None
    if declared is not None:
        try:
            return data.decode(declared.group(1).decode("ascii")), None
        except (LookupError, UnicodeDecodeError):
            pass
    return text, warning


def _html_fragment_text(html: str) -> str:
    tree = LexborHTMLParser(html)
    _drop_html_chrome(tree)
    return _html_text(tree.body)


def _drop_html_chrome(tree: LexborHTMLParser) -> None:
    for node in tree.css(_HTML_DROP):
        node.decompose()


def _html_content_roots(tree: LexborHTMLParser) -> list[LexborNode]:
    _drop_html_chrome(tree)
    main = tree.css_first("main")
    roots = [main] if main is not None else tree.css("article")
    if not roots:
        # Page chrome: an article's own <header> holds its title, so only drop it here.
        for node in tree.css("header"):
            node.decompose()
        roots = [node for node in (tree.body or tree.root,) if node is not None]
    return roots


def _html_text(root: LexborNode | None) -> str:
    """Text of ``root`` with block elements as paragraphs; iterative, so deep nesting is fine."""
    if root is None:
        return ""
    parts: list[str] = []
    preformatted = 0
    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        tag = node.tag or ""
        if closing:
            preformatted -= 1 if tag == "pre" else 0
            parts.append(_html_separators(tag)[1])
            continue
        if node.is_text_node:
            text = node.text_content or ""
            parts.append(text if preformatted else _WHITESPACE.sub(" ", text))
            continue
        before, after = _html_separators(tag)
        parts.append(before)
        if after:
            preformatted += 1 if tag == "pre" else 0
            stack.append((node, True))
        children = [child for child in node.iter(include_text=True) if _is_content(child)]
        stack.extend((child, False) for child in reversed(children))
    return "".join(parts)


def _html_separators(tag: str) -> tuple[str, str]:
    """What goes before and after an element's text: blocks are paragraphs, rows are lines."""
    if tag in _HTML_BLOCKS:
        return "\n\n", "\n\n"
    return _HTML_INLINE_SEPARATORS.get(tag, ("", ""))


def _is_content(node: LexborNode) -> bool:
    return bool(node.is_text_node or node.is_element_node)


def _load_text(data: bytes, name: str, password: str | None) -> ExtractedDocument:
    text, warning = decode_text(data)
    return _single_page(normalize_text(text), TEXT, None, warning)


def _single_page(
    text: str, mime_type: str, title: str | None, warning: str | None
) -> ExtractedDocument:
    warnings = (warning,) if warning else ()
    return ExtractedDocument((Page(1, text),), mime_type, title=title, warnings=warnings)


_LOADERS: dict[str, _Loader] = {
    PDF: _load_pdf,
    MARKDOWN: _load_markdown,
    HTML: _load_html,
    TEXT: _load_text,
}
