"""BEIR loader: the real SciFact files, and small synthetic folders for the edge cases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ragserve.errors import InputError
from ragserve.eval.beir import BeirDataset, BeirDoc, load_beir

SCIFACT_FINGERPRINT = "e341cfeb3bf769e5"


@pytest.fixture(scope="module")
def scifact_test(shared_data: Path) -> BeirDataset:
    return load_beir(shared_data / "scifact", "test")


@pytest.fixture(scope="module")
def scifact_train(shared_data: Path) -> BeirDataset:
    return load_beir(shared_data / "scifact", "train")


def judgments(dataset: BeirDataset) -> int:
    return sum(len(docs) for docs in dataset.qrels.values())


def test_scifact_test_split_counts(scifact_test: BeirDataset) -> None:
    """SciFact test: 5,183 documents, 300 queries, 339 judgments (SOURCES.md)."""
    assert (
        len(scifact_test.corpus),
        len(scifact_test.queries),
        judgments(scifact_test),
    ) == (5183, 300, 339)


def test_scifact_train_split_counts(scifact_train: BeirDataset) -> None:
    """SciFact train: 809 queries, 919 judgments over the same 5,183 documents."""
    assert (
        len(scifact_train.corpus),
        len(scifact_train.queries),
        judgments(scifact_train),
    ) == (5183, 809, 919)


def test_scifact_queries_are_those_of_the_split(scifact_test: BeirDataset) -> None:
    """Only judged queries are kept, and every judged document exists in the corpus."""
    assert set(scifact_test.qrels) == set(scifact_test.queries)
    judged = {doc_id for docs in scifact_test.qrels.values() for doc_id in docs}
    assert judged <= set(scifact_test.corpus)


def test_scifact_document_content(scifact_test: BeirDataset) -> None:
    """A document's content is its title, a space, then its abstract."""
    doc = scifact_test.corpus["4983"]
    assert doc.title.startswith("Microstructural development of human newborn")
    assert f"{doc.title} {doc.text}" == doc.content


def test_scifact_fingerprint_is_pinned(
    scifact_test: BeirDataset, scifact_train: BeirDataset
) -> None:
    """The corpus fingerprint is stable across loads and splits (indexes are keyed by it)."""
    assert scifact_test.fingerprint() == SCIFACT_FINGERPRINT
    assert scifact_train.fingerprint() == SCIFACT_FINGERPRINT


# --- synthetic folders ---------------------------------------------------------------------------


def write_dataset(
    root: Path,
    corpus: list[dict[str, Any]] | None = None,
    queries: list[dict[str, Any]] | None = None,
    qrels: dict[str, bytes] | None = None,
) -> Path:
    """Write a BEIR folder; qrels are raw bytes per split so line endings stay exact."""
    corpus = corpus or [
        {"_id": "d1", "title": "Title one", "text": "Text one."},
        {"_id": "d2", "title": "", "text": "Text two."},
    ]
    queries = queries or [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}]
    qrels = qrels or {"test": b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t0\r\n"}
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels").mkdir(exist_ok=True)
    for split, content in qrels.items():
        (root / "qrels" / f"{split}.tsv").write_bytes(content)
    return root


def test_crlf_qrels_with_header_and_trailing_newlines(tmp_path: Path) -> None:
    """CRLF rows parse cleanly (no "\\r" in scores), the header and blank tail lines are skipped."""
    content = b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq2\td2\t2\r\n\r\n\n"
    dataset = load_beir(write_dataset(tmp_path, qrels={"test": content}), "test")
    assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}


def test_qrels_without_header_keep_their_first_row(tmp_path: Path) -> None:
    """A file without the header row is read from its first line."""
    dataset = load_beir(write_dataset(tmp_path, qrels={"dev": b"q1\td1\t1\nq2\td1\t1"}), "dev")
    assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"d1": 1}}


def test_queries_are_restricted_to_the_split(tmp_path: Path) -> None:
    """Queries not judged in the split are left out; judgments with grade 0 are kept."""
    dataset = load_beir(write_dataset(tmp_path), "test")
    assert dataset.queries == {"q1": "first?"}
    assert dataset.qrels == {"q1": {"d1": 1, "d2": 0}}


def test_documents_and_numeric_ids(tmp_path: Path) -> None:
    """Integer ids become strings; a missing title reads as ""."""
    root = write_dataset(
        tmp_path,
        corpus=[{"_id": 7, "text": " Seven. "}],
        queries=[{"_id": 1, "text": "q"}],
        qrels={"test": b"query-id\tcorpus-id\tscore\n1\t7\t1\n"},
    )
    dataset = load_beir(root, "test")
    assert {"7": BeirDoc(title="", text=" Seven. ")} == dataset.corpus
    assert dataset.corpus["7"].content == "Seven."


@pytest.mark.parametrize(
    ("title", "text", "content"),
    [
        ("Title", "Body.", "Title Body."),
        ("", "Body.", "Body."),
        ("  Title ", "\nBody.\n", "Title Body."),
        ("Title", "", "Title"),
    ],
)
def test_doc_content(title: str, text: str, content: str) -> None:
    """content joins the stripped title and text with one space, skipping an empty part."""
    assert content == BeirDoc(title=title, text=text).content


def test_missing_split_lists_the_available_ones(tmp_path: Path) -> None:
    """Asking for an absent split names the splits that exist."""
    root = write_dataset(tmp_path, qrels={"test": b"q1\td1\t1\n", "train": b"q1\td1\t1\n"})
    with pytest.raises(InputError, match=r"'dev'.*available splits: test, train"):
        load_beir(root, "dev")


def test_missing_qrels_folder(tmp_path: Path) -> None:
    """Without a qrels folder there is no split at all."""
    root = write_dataset(tmp_path)
    for tsv in (root / "qrels").iterdir():
        tsv.unlink()
    (root / "qrels").rmdir()
    with pytest.raises(InputError, match="available splits: none"):
        load_beir(root, "test")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_missing_jsonl_file(tmp_path: Path, name: str) -> None:
    """A missing corpus or queries file is named in the error."""
    root = write_dataset(tmp_path)
    (root / name).unlink()
    with pytest.raises(InputError, match=re.escape(name) + " is missing"):
        load_beir(root, "test")


def test_not_a_folder(tmp_path: Path) -> None:
    """A path that is not a folder is rejected up front."""
    with pytest.raises(InputError, match="is not a folder"):
        load_beir(tmp_path / "nowhere", "test")


def test_invalid_json_line_is_located(tmp_path: Path) -> None:
    """A malformed corpus line is reported with its line number."""
    root = write_dataset(tmp_path)
    with (root / "corpus.jsonl").open("a") as corpus:
        corpus.write("{not json\n")
    with pytest.raises(InputError, match=r"corpus\.jsonl:3: invalid JSON"):
        load_beir(root, "test")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"q1\td1\tyes\n", "score 'yes' is not an integer"),
        (b"q1\td1\n", "expected query-id, corpus-id, score"),
        (b"query-id\tcorpus-id\tscore\n", "holds no judgments"),
    ],
)
def test_malformed_qrels(tmp_path: Path, content: bytes, message: str) -> None:
    """Bad rows and empty files are reported with the file and line."""
    with pytest.raises(InputError, match=re.escape(message)):
        load_beir(write_dataset(tmp_path, qrels={"test": content}), "test")


def test_judged_query_without_text(tmp_path: Path) -> None:
    """A qrels query missing from queries.jsonl is an error, not a silent drop."""
    root = write_dataset(tmp_path, qrels={"test": b"q9\td1\t1\n"})
    with pytest.raises(InputError, match=r"have no text, e\.g\. \['q9'\]"):
        load_beir(root, "test")


def test_duplicate_document_id(tmp_path: Path) -> None:
    """Two corpus entries with one id would silently shadow each other, so they are refused."""
    corpus = [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}]
    with pytest.raises(InputError, match="duplicate document id 'd1'"):
        load_beir(write_dataset(tmp_path, corpus=corpus), "test")


def test_fingerprint_ignores_order_and_follows_content(tmp_path: Path) -> None:
    """Reordering corpus lines keeps the fingerprint; changing one text changes it."""
    docs = [{"_id": "d1", "title": "T", "text": "one"}, {"_id": "d2", "text": "two"}]
    first = load_beir(write_dataset(tmp_path / "a", corpus=docs), "test").fingerprint()
    reordered = load_beir(write_dataset(tmp_path / "b", corpus=docs[::-1]), "test").fingerprint()
    edited = [docs[0], {"_id": "d2", "text": "two!"}]
    changed = load_beir(write_dataset(tmp_path / "c", corpus=edited), "test").fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert first == reordered
    assert first != changed
