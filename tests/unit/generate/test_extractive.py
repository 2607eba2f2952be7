"""Extractive answers: sentence splitting, selection, citation and abstention."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragserve.generate.extractive import ExtractiveGenerator, split_sentences
from ragserve.generate.prompt import ABSTAIN_TEXT, extract_citations
from ragserve.types import Source, Usage

MakeSource = Callable[..., Source]
# tests/unit/generate/ -> parents[3] is the repository root; shared/ lives beside it.
SQUAD = Path(__file__).resolve().parents[4] / "shared/data/qa/squad-v2.0-dev-cs224n-half.json"

SOLAR = (
    "The Sun is a star at the centre of the Solar System. It is a nearly perfect ball of hot "
    "plasma. The Sun's diameter is about 1.39 million kilometres, 109 times that of Earth. "
    "Its mass is about 330,000 times that of Earth."
)
MOON = "The Moon orbits Earth at an average distance of 384,400 km. It has no atmosphere."


def test_split_sentences_respects_abbreviations_and_initials() -> None:
    """Sentences end at .!? before a capital or digit, not after "Dr." or an initial."""
    text = 'Dr. Smith met J. R. R. Tolkien in 1950. "Really?" he asked. 42 people came.\n\nEnd'

    assert split_sentences(text) == [
        "Dr. Smith met J. R. R. Tolkien in 1950.",
        '"Really?" he asked.',
        "42 people came.",
        "End",
    ]


def test_answers_with_the_best_sentence_cited(make_source: MakeSource) -> None:
    """The sentence covering the question's rare terms is returned with its source number."""
    generator = ExtractiveGenerator()

    generation = generator.generate(
        "What is the diameter of the Sun?", [make_source(1, MOON), make_source(2, SOLAR)]
    )

    assert (
        generation.text
        == "The Sun's diameter is about 1.39 million kilometres, 109 times that of Earth [2]."
    )
    assert not generation.abstained
    assert Usage() == generation.usage
    assert "extractive" == generation.model == generator.model_id


def test_adds_non_redundant_sentences_that_score_close(make_source: MakeSource) -> None:
    """A second sentence joins when it scores near the best and says something else."""
    sources = [
        make_source(1, "Marie Curie won a Nobel Prize in Physics in 1903."),
        make_source(2, "Marie Curie won another Nobel Prize, in Chemistry, in 1911."),
    ]

    generation = ExtractiveGenerator().generate("Which Nobel Prizes did Marie Curie win?", sources)

    assert extract_citations(generation.text, 2) == [1, 2]


def test_repeated_sentence_is_not_added_twice(make_source: MakeSource) -> None:
    """The same sentence in two sources is answered once."""
    sentence = "The Moon orbits Earth at an average distance of 384,400 km."
    sources = [make_source(1, sentence), make_source(2, sentence)]

    generation = ExtractiveGenerator().generate("How far is the Moon from Earth?", sources)

    assert f"{sentence[:-1]} [1]." == generation.text


def test_prefers_the_higher_ranked_source_on_a_tie(make_source: MakeSource) -> None:
    """Equal sentences in two sources: the first-ranked one is chosen."""
    sources = [
        make_source(1, "Water boils at 100 degrees."),
        make_source(2, "Water boils at 100 degrees."),
    ]

    assert extract_citations(
        ExtractiveGenerator().generate("When does water boil?", sources).text, 2
    ) == [1]


@pytest.mark.parametrize(
    "question",
    ["Who painted the Mona Lisa?", "What is it?", "   "],
)
def test_abstains_when_the_sources_do_not_cover_the_question(
    make_source: MakeSource, question: str
) -> None:
    """Unrelated sources, or a question with no content word, give the abstain sentence."""
    generation = ExtractiveGenerator().generate(question, [make_source(1, SOLAR)])

    assert generation.text == ABSTAIN_TEXT
    assert generation.abstained


def test_abstains_without_sources() -> None:
    """No sources, no answer."""
    assert ExtractiveGenerator().generate("What is the Sun?", []).abstained


def test_stream_joins_to_the_generated_text(make_source: MakeSource) -> None:
    """Word pieces, joined, are the generate() text; the generator returns the Generation."""
    generator = ExtractiveGenerator()
    sources = [make_source(1, SOLAR)]
    stream = generator.stream("What is the mass of the Sun?", sources)
    pieces: list[str] = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as stop:
            returned = stop.value
            break

    expected = generator.generate("What is the mass of the Sun?", sources)
    assert expected.text == "".join(pieces)
    assert expected == returned
    assert len(pieces) > 3


def test_rejects_out_of_range_parameters() -> None:
    """A coverage outside [0, 1] or zero sentences is a programming error."""
    with pytest.raises(ValueError, match="min_coverage"):
        ExtractiveGenerator(min_coverage=1.5)
    with pytest.raises(ValueError, match="max_sentences"):
        ExtractiveGenerator(max_sentences=0)


@pytest.fixture(scope="module")
def normans() -> dict[str, object]:
    """The first paragraph of the SQuAD 2.0 dev slice (the Normans) with its questions."""
    if not SQUAD.is_file():
        pytest.fail(f"{SQUAD} is missing: it comes with ../shared/data", pytrace=False)
    paragraph: dict[str, object] = json.loads(SQUAD.read_text())["data"][0]["paragraphs"][0]
    return paragraph


@pytest.mark.parametrize(
    ("question", "gold"),
    [
        ("In what country is Normandy located?", "France"),
        ("When were the Normans in Normandy?", "10th and 11th centuries"),
        ("Who was the Norse leader?", "Rollo"),
        ("What century did the Normans first gain their separate identity?", "10th century"),
    ],
)
def test_squad_paragraph_best_sentence_holds_the_gold_answer(
    make_source: MakeSource, normans: dict[str, object], question: str, gold: str
) -> None:
    """On a real SQuAD paragraph the first answer sentence contains the gold answer."""
    source = make_source(1, str(normans["context"]), title="Normans")

    generation = ExtractiveGenerator().generate(question, [source])

    assert not generation.abstained
    assert gold in generation.text.split(" [1]")[0]
    assert extract_citations(generation.text, 1) == [1]
