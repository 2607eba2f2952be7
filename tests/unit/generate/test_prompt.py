"""The grounded prompt and how answers are read back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ragserve.generate.prompt import (
    ABSTAIN_TEXT,
    SYSTEM_PROMPT,
    build_prompt,
    detect_abstention,
    estimate_tokens,
    extract_citations,
    strip_pieces,
)
from ragserve.types import Source

MakeSource = Callable[..., Source]


def test_system_prompt_states_the_contract() -> None:
    """The system message asks for sources only, [n] citations, the exact abstain sentence."""
    assert "only the numbered sources" in SYSTEM_PROMPT
    assert "[1]" in SYSTEM_PROMPT
    assert ABSTAIN_TEXT in SYSTEM_PROMPT


def test_user_message_lists_numbered_sources_then_the_question(make_source: MakeSource) -> None:
    """Each source appears as "[n] (title, page p)" above its text, the question last."""
    sources = [
        make_source(1, "Paris is the capital of France.", title="Atlas", page=3),
        make_source(2, "Berlin is the capital of Germany.", title=None, page=1),
    ]

    prompt = build_prompt("What is the capital of France?", sources)

    expected = (
        "Sources:\n\n"
        "[1] (Atlas, page 3)\nParis is the capital of France.\n\n"
        "[2] (doc-2.txt, page 1)\nBerlin is the capital of Germany.\n\n"
        "Question: What is the capital of France?"
    )
    assert expected == prompt.user
    assert [("system", SYSTEM_PROMPT), ("user", expected)] == [
        (m["role"], m["content"]) for m in prompt.messages()
    ]
    assert prompt.sources_used == 2


def test_sources_are_cut_to_the_token_budget_in_rank_order(make_source: MakeSource) -> None:
    """The first source stays whole, the one that overflows is cut at a word, the rest dropped."""
    words = " ".join(f"word{i}" for i in range(400))
    sources = [make_source(1, "short first source"), make_source(2, words), make_source(3, words)]

    prompt = build_prompt("question?", sources, max_tokens=400)

    assert "short first source" in prompt.user
    assert prompt.sources_used == 2
    assert "[3]" not in prompt.user
    kept = prompt.user.split("[2] (doc-2.txt, page 1)\n")[1].split("\n\nQuestion:")[0]
    assert kept.endswith(" …")
    assert words.startswith(kept[:-2])
    assert estimate_tokens(prompt.system) + estimate_tokens(prompt.user) <= 400


def test_budget_is_measured_with_the_given_counter(make_source: MakeSource) -> None:
    """A caller's tokenizer decides the cut, here one token per word."""
    text = " ".join(["w"] * 500)

    def words(s: str) -> int:
        return len(s.split())

    prompt = build_prompt("q", [make_source(1, text)], max_tokens=200, count_tokens=words)

    assert words(prompt.system) + words(prompt.user) <= 200
    assert prompt.sources_used == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris [1] and Berlin [2].", [1, 2]),
        ("Both [2, 1], again [1][2].", [2, 1]),
        ("Out of range [0] [4] [12]; valid [3].", [3]),
        ("No citations here, nor [a] or [ 1 ].", []),
    ],
)
def test_extract_citations_keeps_valid_numbers_in_order(text: str, expected: list[int]) -> None:
    """Only [n] with 1 <= n <= number of sources count, deduplicated, first mention first."""
    assert expected == extract_citations(text, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ABSTAIN_TEXT, True),
        ("  i could NOT find the answer in the provided sources  ", True),
        ("I couldn’t find the answer in the provided sources!", True),
        ("Answer: I could not find the answer in the provided sources.", True),
        ("", True),
        ("The capital is Paris [1].", False),
        ("I could not find it.", False),
    ],
)
def test_detect_abstention(text: str, expected: bool) -> None:
    """The abstain sentence counts whatever its case, punctuation or contraction; so does ""."""
    assert expected == detect_abstention(text)


@pytest.mark.parametrize(
    "pieces",
    [
        ["  Hello", " world", "  "],
        ["\n", " ", "Hi", " ", " there", "\n"],
        ["", "a", "", " b "],
        [" "],
    ],
)
def test_strip_pieces_joins_to_the_stripped_text(pieces: list[str]) -> None:
    """Streamed pieces, joined, equal the stripped whole, with no empty piece."""
    streamed = list(strip_pieces(pieces))

    assert "".join(pieces).strip() == "".join(streamed)
    assert all(streamed)
