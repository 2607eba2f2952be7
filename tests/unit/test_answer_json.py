"""A question job's result is exactly the API's QueryResponse body."""

from __future__ import annotations

from collections.abc import Callable

from ragserve.api.schemas import QueryResponse
from ragserve.job_service import answer_json
from ragserve.types import Answer, Source, Usage


def test_answer_json_matches_the_query_response(make_source: Callable[..., Source]) -> None:
    """answer_json and QueryResponse.of give the same JSON for the same answer."""
    sources = (make_source(1, "The tide turns at dawn." * 40, title="Log"), make_source(2, "x"))
    answer = Answer(
        question="When does the tide turn?",
        text="At dawn [1].",
        sources=sources,
        abstained=False,
        timings_ms={"embed": 1.5, "retrieve": 2.0},
        usage=Usage(prompt_tokens=12, completion_tokens=4),
        model="extractive",
        standalone_question="When does the tide turn at the harbour?",
    )
    assert answer_json(answer) == QueryResponse.of(answer).model_dump(mode="json")
