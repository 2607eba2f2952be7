"""Load a dataset in BEIR's folder layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragserve.errors import InputError

__all__ = ["BeirDataset", "BeirDoc", "corpus_fingerprint", "load_beir"]

_QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class BeirDoc:
    """One corpus entry; ``content`` is what gets indexed."""

    title: str
    text: str

    @property
    def content(self) -> str:
        """``title + " " + text``, each stripped; just the text when there is no title."""
        return " ".join(part for part in (self.title.strip(), self.text.strip()) if part)


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR split: the whole corpus, the split's queries and their relevance judgments.

    ``queries`` holds only the queries judged in the split's qrels (as BEIR's loader does).
    """

    corpus: dict[str, BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def fingerprint(self) -> str:
        """Identity of the corpus, to recognise an index already built from it."""
        return corpus_fingerprint(self.corpus)


def corpus_fingerprint(corpus: Mapping[str, BeirDoc]) -> str:
    """First 16 hex digits of sha256 over (id, content) pairs in id order.

    Independent of file order; changes with any id or indexed text (not with unused fields).
    """
    digest = hashlib.sha256()
    for doc_id in sorted(corpus):
        # JSON framing keeps the encoding unambiguous whatever the ids and texts contain.
        digest.update(json.dumps([doc_id, corpus[doc_id].content]).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def load_beir(directory: Path, split: str) -> BeirDataset:
    """Read ``directory``/{corpus.jsonl, queries.jsonl, qrels/<split>.tsv}.

    Raises ``InputError`` naming the file (and line) when a file is missing or malformed, listing
    the available splits when ``split`` has no qrels file, and when a judged query has no text.
    """
    directory = Path(directory)
    qrels = _read_qrels(_qrels_path(directory, split))
    corpus: dict[str, BeirDoc] = {}
    for where, record in _read_jsonl(directory / "corpus.jsonl"):
        doc_id = _field(record, "_id", where)
        if doc_id in corpus:
            raise InputError(f"{where}: duplicate document id {doc_id!r}")
        corpus[doc_id] = BeirDoc(
            title=_field(record, "title", where, default=""),
            text=_field(record, "text", where, default=""),
        )
    if not corpus:
        raise InputError(f"{directory / 'corpus.jsonl'} holds no documents")
    all_queries = {
        _field(record, "_id", where): _field(record, "text", where)
        for where, record in _read_jsonl(directory / "queries.jsonl")
    }
    missing = [qid for qid in qrels if qid not in all_queries]
    if missing:
        raise InputError(
            f"{directory / 'queries.jsonl'}: {len(missing)} quer(ies) judged in split {split!r} "
            f"have no text, e.g. {missing[:5]}"
        )
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def _qrels_path(directory: Path, split: str) -> Path:
    if not directory.is_dir():
        raise InputError(f"{directory} is not a folder; expected a BEIR dataset folder")
    qrels_dir = directory / "qrels"
    available = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    if split not in available:
        raise InputError(
            f"no qrels for split {split!r} in {qrels_dir}; available splits: "
            f"{', '.join(available) or 'none'}"
        )
    return qrels_dir / f"{split}.tsv"


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Parse ``query-id<TAB>corpus-id<TAB>score`` rows; the header row is optional."""
    qrels: dict[str, dict[str, int]] = {}
    # Text mode applies universal newlines, so BEIR's CRLF files parse like LF ones.
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            row = tuple(cell.strip() for cell in line.rstrip("\r\n").split("\t"))
            if row == ("",):
                continue
            if number == 1 and row == _QRELS_HEADER:
                continue
            if len(row) != 3 or not row[0] or not row[1]:
                raise InputError(f"{path}:{number}: expected query-id, corpus-id, score")
            try:
                score = int(row[2])
            except ValueError:
                raise InputError(f"{path}:{number}: score {row[2]!r} is not an integer") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    if not qrels:
        raise InputError(f"{path} holds no judgments")
    return qrels


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("<path>:<line>", object)`` for each non-blank line."""
    if not path.is_file():
        raise InputError(f"{path} is missing; a BEIR folder needs corpus.jsonl and queries.jsonl")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a JSON object")
            yield where, record


def _field(record: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = record.get(key)
    if value is None:
        if default is None:
            raise InputError(f"{where}: missing {key!r}")
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{where}: {key!r} must be a string")
    return str(value)
