"""Follow-up questions made to stand alone before retrieval."""

from __future__ import annotations

from ragserve.generate.condense import REWRITE_SYSTEM, Turn, standalone_question

HISTORY = [
    Turn("user", "What is metformin used for?"),
    Turn("assistant", "Metformin treats type 2 diabetes [1]."),
]


def test_without_history_the_question_is_unchanged() -> None:
    """No earlier turns: retrieval uses the question as asked."""
    assert standalone_question("  What is aspirin?  ", []) == "What is aspirin?"


def test_a_dependent_follow_up_gets_the_earlier_question_terms() -> None:
    """A pronoun-led follow-up carries the earlier question's key terms."""
    result = standalone_question("What are its side effects?", HISTORY)
    assert result.startswith("What are its side effects?")
    assert "metformin" in result.lower()


def test_a_self_contained_follow_up_is_left_alone() -> None:
    """A follow-up that names its own subject needs no context."""
    question = "How is insulin glargine dosed in adults?"
    assert standalone_question(question, HISTORY) == question


def test_assistant_turns_are_not_used_as_context_terms() -> None:
    """Only the user's earlier questions supply context terms, never the answers."""
    result = standalone_question("And its cost?", HISTORY)
    assert "diabetes" not in result.lower()


def test_a_rewriter_is_asked_with_the_conversation() -> None:
    """With a chat model, the rewrite it returns is the standalone question."""
    calls: list[tuple[str, str]] = []

    def rewrite(system: str, user: str) -> str:
        calls.append((system, user))
        return "What are the side effects of metformin?"

    result = standalone_question("What are its side effects?", HISTORY, rewrite)
    assert result == "What are the side effects of metformin?"
    assert calls[0][0] == REWRITE_SYSTEM
    assert "What is metformin used for?" in calls[0][1]
    assert calls[0][1].endswith("Last question: What are its side effects?")


def test_an_empty_rewrite_falls_back_to_the_question() -> None:
    """A model that returns nothing leaves the question as asked."""
    assert standalone_question("And its dose?", HISTORY, lambda s, u: "  ") == "And its dose?"
