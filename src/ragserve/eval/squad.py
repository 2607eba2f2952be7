"""Load a SQuAD v1.1/v2.0 JSON file into paragraphs (to index) and questions (to ask)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragserve.errors import InputError

__all__ = ["SquadDataset", "SquadParagraph", "SquadQuestion", "load_squad"]


@dataclass(frozen=True)
class SquadParagraph:
    """A context paragraph; ``id`` is ``"<article index>-<paragraph index>"`` (0-based)."""

    id: str
    title: str
    context: str


@dataclass(frozen=True)
class SquadQuestion:
    """A question about one paragraph; ``answers`` are the gold texts, empty when impossible."""

    id: str
    question: str
    answers: tuple[str, ...]
    is_impossible: bool
    paragraph_id: str


@dataclass(frozen=True)
class SquadDataset:
    """Paragraphs and questions in file order."""

    paragraphs: tuple[SquadParagraph, ...]
    questions: tuple[SquadQuestion, ...]
    version: str = ""

    def fingerprint(self) -> str:
        """First 16 hex digits of sha256 over the paragraphs' (id, title, context), in order.

        Identifies the indexed text, to recognise an index already built from it.
        """
        digest = hashlib.sha256()
        for paragraph in self.paragraphs:
            # JSON framing keeps the encoding unambiguous whatever the texts contain.
            digest.update(json.dumps([paragraph.id, paragraph.title, paragraph.context]).encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]


def load_squad(path: Path) -> SquadDataset:
    """Read a SQuAD JSON file (``{"version", "data": [{"title", "paragraphs": [...]}]}``).

    Files without ``is_impossible`` (v1.1) mark a question impossible when it has no answer.
    Raises ``InputError`` naming the file and the offending entry when the file is unreadable,
    is not SQuAD-shaped, repeats a question id, or contradicts ``is_impossible``.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a JSON object with a 'data' list")
    paragraphs: list[SquadParagraph] = []
    questions: list[SquadQuestion] = []
    for a, article in enumerate(_items(document, "data", f"{path}")):
        title = _text(article, "title", f"{path}: data[{a}]", default="")
        for p, paragraph in enumerate(_items(article, "paragraphs", f"{path}: data[{a}]")):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            paragraph_id = f"{a}-{p}"
            context = _text(paragraph, "context", where)
            paragraphs.append(SquadParagraph(paragraph_id, title, context))
            for q, qa in enumerate(_items(paragraph, "qas", where)):
                questions.append(_question(qa, paragraph_id, f"{where}.qas[{q}]"))
    _check_unique_ids(questions, path)
    version = document.get("version", "")
    return SquadDataset(tuple(paragraphs), tuple(questions), str(version))


def _question(qa: dict[str, Any], paragraph_id: str, where: str) -> SquadQuestion:
    answers = tuple(
        _text(answer, "text", f"{where}.answers[{i}]")
        for i, answer in enumerate(_items(qa, "answers", where))
    )
    is_impossible = qa.get("is_impossible", not answers)
    if not isinstance(is_impossible, bool):
        raise InputError(f"{where}: 'is_impossible' must be true or false")
    if is_impossible == bool(answers):
        state = "impossible but has answers" if answers else "answerable but has no answer"
        raise InputError(f"{where}: question is marked {state}")
    return SquadQuestion(
        id=_text(qa, "id", where),
        question=_text(qa, "question", where),
        answers=answers,
        is_impossible=is_impossible,
        paragraph_id=paragraph_id,
    )


def _items(parent: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = parent.get(key)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InputError(f"{where}: {key!r} must be a list of objects")
    return value


def _text(parent: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = parent.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"{where}: {key!r} must be a string")
    return value


def _check_unique_ids(questions: list[SquadQuestion], path: Path) -> None:
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise InputError(f"{path}: duplicate question id {question.id!r}")
        seen.add(question.id)
