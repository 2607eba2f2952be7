"""SQuAD loader: the real CS224N dev half, and small synthetic files for the error cases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ragserve.errors import InputError
from ragserve.eval.squad import SquadDataset, SquadParagraph, SquadQuestion, load_squad

SQUAD_FINGERPRINT = "a62a6110fb215a0c"


@pytest.fixture(scope="module")
def squad(shared_data: Path) -> SquadDataset:
    return load_squad(shared_data / "qa" / "squad-v2.0-dev-cs224n-half.json")


def test_real_file_counts(squad: SquadDataset) -> None:
    """646 paragraphs, 6,078 questions of which 3,168 are impossible (SOURCES.md)."""
    impossible = sum(question.is_impossible for question in squad.questions)
    assert (len(squad.paragraphs), len(squad.questions), impossible) == (646, 6078, 3168)
    assert squad.version == "v2.0"


def test_real_file_first_entries(squad: SquadDataset) -> None:
    """Paragraph ids are "<article>-<paragraph>"; questions keep every gold answer text."""
    assert squad.paragraphs[0].id == "0-0"
    assert squad.paragraphs[0].title == "Normans"
    assert (
        SquadQuestion(
            id="68cf05f67fd29c6f129fe2fb9",
            question="In what country is Normandy located?",
            answers=("France",) * 4,
            is_impossible=False,
            paragraph_id="0-0",
        )
        == squad.questions[0]
    )


def test_real_file_is_consistent(squad: SquadDataset) -> None:
    """Ids are unique, every question points at a loaded paragraph, answers match impossibility."""
    paragraph_ids = [paragraph.id for paragraph in squad.paragraphs]
    assert len(set(paragraph_ids)) == len(paragraph_ids)
    assert {q.paragraph_id for q in squad.questions} <= set(paragraph_ids)
    assert all(bool(q.answers) != q.is_impossible for q in squad.questions)


def test_real_file_fingerprint_is_pinned(squad: SquadDataset) -> None:
    """The paragraph fingerprint is stable (indexes are keyed by it)."""
    assert squad.fingerprint() == SQUAD_FINGERPRINT


# --- synthetic files -----------------------------------------------------------------------------


def squad_json(**question: Any) -> dict[str, Any]:
    qa = {"id": "q1", "question": "Who?", "answers": [{"text": "Ann", "answer_start": 0}]}
    qa.update(question)
    return {
        "version": "v2.0",
        "data": [{"title": "T", "paragraphs": [{"context": "Ann did.", "qas": [qa]}]}],
    }


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(document))
    return path


def test_synthetic_file_round_trip(tmp_path: Path) -> None:
    """One article, one paragraph, one answerable and one impossible question."""
    document = squad_json()
    document["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "q2", "question": "Why?", "answers": [], "is_impossible": True}
    )
    dataset = load_squad(write(tmp_path, document))
    assert (SquadParagraph("0-0", "T", "Ann did."),) == dataset.paragraphs
    assert [(q.id, q.answers, q.is_impossible) for q in dataset.questions] == [
        ("q1", ("Ann",), False),
        ("q2", (), True),
    ]


def test_v1_file_without_is_impossible(tmp_path: Path) -> None:
    """SQuAD v1.1 questions (no is_impossible field) are answerable when they have answers."""
    document = squad_json()
    document["version"] = "1.1"
    assert not load_squad(write(tmp_path, document)).questions[0].is_impossible


def test_missing_file(tmp_path: Path) -> None:
    """A missing path is an InputError naming it."""
    with pytest.raises(InputError, match="does not exist"):
        load_squad(tmp_path / "absent.json")


def test_invalid_json(tmp_path: Path) -> None:
    """A truncated file is reported as invalid JSON."""
    path = tmp_path / "squad.json"
    path.write_text('{"data": [')
    with pytest.raises(InputError, match="is not valid JSON"):
        load_squad(path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected a JSON object"),
        ({"version": "v2.0"}, "'data' must be a list of objects"),
        ({"data": [{"title": "T", "paragraphs": {}}]}, "data[0]: 'paragraphs' must be a list"),
        ({"data": [{"paragraphs": [{"qas": []}]}]}, "paragraphs[0]: 'context' must be a string"),
        (squad_json(question=None), "qas[0]: 'question' must be a string"),
        (squad_json(is_impossible="no"), "'is_impossible' must be true or false"),
        (squad_json(is_impossible=True), "marked impossible but has answers"),
        (squad_json(answers=[], is_impossible=False), "marked answerable but has no answer"),
    ],
)
def test_malformed_files_are_located(tmp_path: Path, document: Any, message: str) -> None:
    """Shape errors name the file and the offending entry."""
    with pytest.raises(InputError, match=re.escape(message)):
        load_squad(write(tmp_path, document))


def test_duplicate_question_ids(tmp_path: Path) -> None:
    """Two questions sharing an id would collide in prediction files, so they are refused."""
    document = squad_json()
    paragraphs = document["data"][0]["paragraphs"]
    paragraphs.append(json.loads(json.dumps(paragraphs[0])))
    with pytest.raises(InputError, match="duplicate question id 'q1'"):
        load_squad(write(tmp_path, document))
