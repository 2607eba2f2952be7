"""Follow-up questions made to stand alone before retrieval.

"What about its side effects?" retrieves nothing useful on its own. Given the earlier turns,
:func:`standalone_question` either asks a capable chat model to rewrite the question
(``rewrite``), or, with no model, appends the earlier questions' key terms when the follow-up
leans on them (a pronoun or demonstrative, or too few terms of its own to search with).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ragserve.analysis import terms

Role = Literal["user", "assistant"]
Rewrite = Callable[[str, str], str]
"""``rewrite(system, user) -> text``: one chat completion from the configured model."""

REWRITE_SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation: "
    "replace pronouns and references with what they refer to. Keep its meaning and language. "
    "Reply with the rewritten question only."
)
_DEPENDENT = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|hers|"
    r"there|then|same|former|latter|above|previous|one|ones)\b",
    re.IGNORECASE,
)
_MIN_OWN_TERMS = 3
_CONTEXT_TURNS = 2
_MAX_CONTEXT_TERMS = 12


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation."""

    role: Role
    content: str


def standalone_question(
    question: str, history: Sequence[Turn], rewrite: Rewrite | None = None
) -> str:
    """The question to retrieve with: ``question`` itself when there is no history or it
    needs none, else a rewrite by the model or the question plus earlier key terms."""
    question = question.strip()
    earlier = [t.content.strip() for t in history if t.role == "user" and t.content.strip()]
    if not earlier:
        return question
    if rewrite is not None:
        rewritten = rewrite(REWRITE_SYSTEM, _rewrite_request(question, history)).strip()
        return rewritten if 0 < len(rewritten) <= 4 * len(question) + 500 else question
    return _with_context_terms(question, earlier[-_CONTEXT_TURNS:])


def _with_context_terms(question: str, earlier: Sequence[str]) -> str:
    own = terms(question)
    if len(set(own)) >= _MIN_OWN_TERMS and not _DEPENDENT.search(question):
        return question
    seen = set(own)
    extra: list[str] = []
    for turn in reversed(earlier):  # the most recent question first
        for word in turn.split():
            stemmed = terms(word)
            if stemmed and not seen.intersection(stemmed):
                seen.update(stemmed)
                extra.append(word.strip(".,;:!?()[]\"'"))
    extra = [w for w in extra if w][:_MAX_CONTEXT_TERMS]
    return f"{question} ({' '.join(extra)})" if extra else question


def _rewrite_request(question: str, history: Sequence[Turn]) -> str:
    lines = [f"{turn.role}: {turn.content.strip()}" for turn in history[-6:]]
    return "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}"
