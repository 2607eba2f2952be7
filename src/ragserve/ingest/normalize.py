"""Text normalisation shared by every loader: deterministic, and it only drops what a reader
cannot see (control and format characters, layout whitespace, PDF line wrapping)."""

from __future__ import annotations

import re
import unicodedata

_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x85\u2028]")
_PAGE_BREAKS = re.compile(r"[\x0c\u2029]")
# C0/C1 controls except \t and \n, format characters (Cf) except ZWNJ/ZWJ, which change how
# some scripts are spelled, lone surrogates, and private-use glyphs (unmapped PDF font icons).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f"
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
    "\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff]"
)
_SPACES = re.compile(r"[^\S\n]+")
_LINE_EDGES = re.compile(r" ?\n ?")
_BLANK_RUNS = re.compile(r"\n{3,}")
# Typographic ligatures PDF fonts emit; NFC keeps them, and they break keyword search.
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
    | {"\ufb05": "st", "\ufb06": "st"}
)
_FILENAME_TITLE = re.compile(
    r"[\w\-. ]+\.(?:exe|docx?|rtf|odt|pdf|tex|dvi|ps|eps|txt|indd|qxd|pages|pptx?|xlsx?|html?|wpd)",
    re.IGNORECASE,
)
_FULL_LINE_SHARE = 0.75


def normalize_text(text: str, *, reflow: bool = False) -> str:
    """Clean ``text`` into paragraphs separated by one blank line.

    Removes control/format characters, applies Unicode NFC, expands ligatures, collapses runs of
    spaces and trims each line. With ``reflow`` (PDF text), joins words hyphenated across lines
    and lines wrapped inside a paragraph (see :func:`reflow_lines`).
    """
    text = _PAGE_BREAKS.sub("\n\n", _LINE_BREAKS.sub("\n", text))
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFC", text).translate(_LIGATURES)
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    if reflow:
        text = reflow_lines(text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def reflow_lines(text: str) -> str:
    """Rebuild paragraphs from PDF lines (already trimmed, one per ``\\n``).

    A line at least 75% as long as the page's typical full line continues into the next one; a
    shorter line ends its paragraph (headings, last lines, table rows). ``infor-`` + ``mation``
    becomes ``information``; a drop capital (``T`` + ``he``) joins its word.
    """
    lines = text.split("\n")
    full = _full_line_width(lines)
    paragraphs: list[str] = []
    current = previous = ""
    for line in lines:
        if not line:
            paragraphs.append(current)
            current = previous = ""
            continue
        if not current:
            current = line
        elif _is_hyphenated(previous, line):
            current = current[:-1] + line
        elif _is_drop_capital(current, line):
            current += line
        elif len(previous) >= full:
            current += " " + line
        else:
            paragraphs.append(current)
            current = line
        previous = line
    paragraphs.append(current)
    return "\n\n".join(p for p in paragraphs if p)


def clean_title(title: object) -> str | None:
    """A displayable title from document metadata, or None when it is empty or just a file name."""
    if not isinstance(title, str):
        return None
    text = normalize_text(title).replace("\n", " ").strip()
    text = text.removeprefix("Microsoft Word - ").strip()
    if not text or _FILENAME_TITLE.fullmatch(text):
        return None
    return text[:300]


def _full_line_width(lines: list[str]) -> float:
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return 0.0
    typical = lengths[min(len(lengths) - 1, (3 * len(lengths)) // 4)]
    return typical * _FULL_LINE_SHARE


def _is_hyphenated(previous: str, line: str) -> bool:
    return (
        len(previous) >= 2
        and previous.endswith("-")
        and previous[-2].isalpha()
        and line[0].islower()
    )


def _is_drop_capital(current: str, line: str) -> bool:
    return len(current) == 1 and current.isupper() and line[0].islower()
