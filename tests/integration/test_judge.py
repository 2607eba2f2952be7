"""The LLM judge over real HTTP: a scripted stub of the judge service to count retries
exactly, and a real llama.cpp OpenAI-compatible server on SmolLM2."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ragserve.config import EvalSettings
from ragserve.errors import MissingDependencyError
from ragserve.eval.judge import InvalidJudgement, OpenAIJudge, parse_ratings

VALID = json.dumps(
    {
        "faithfulness": {"score": 5, "reason": "Every claim is in source 1."},
        "relevance": {"score": 4, "reason": "It answers the question."},
        "completeness": {"score": 3, "reason": "The year is missing."},
    }
)
QUESTION = "When was the Eiffel Tower built?"
SOURCES = ["The Eiffel Tower was built from 1887 to 1889 for the World's Fair in Paris."]


@dataclass
class StubJudge:
    """A scripted OpenAI-compatible chat endpoint: one (status, content) per request."""

    script: list[tuple[int, str]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    reject_formats: tuple[str, ...] = ()
    url: str = ""


@pytest.fixture
def stub() -> Iterator[StubJudge]:
    state = StubJudge(script=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            response_format = (body.get("response_format") or {}).get("type", "none")
            if response_format in state.reject_formats:
                self.reply(400, {"error": {"message": f"{response_format} unsupported"}})
                return
            state.requests.append(body)
            status, content = state.script.pop(0) if state.script else (200, VALID)
            if status != 200:
                self.reply(status, {"error": {"message": "overloaded"}})
                return
            message = {"role": "assistant", "content": content}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self.reply(200, {"id": "c", "object": "chat.completion", "created": 0,
                             "model": body["model"], "choices": [choice]})  # fmt: skip

        def reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def judge_for(stub: StubJudge) -> Iterator[Callable[..., OpenAIJudge]]:
    """A factory of judges on the stub; every judge is closed after the test."""
    made: list[OpenAIJudge] = []

    def make(retries: int = 3) -> OpenAIJudge:
        made.append(OpenAIJudge(stub.url, "stub", retries=retries, backoff_s=0.0, timeout_s=5))
        return made[-1]

    yield make
    for judge in made:
        judge.close()


def test_invalid_json_twice_then_valid_takes_three_attempts(
    stub: StubJudge, judge_for: Callable[..., OpenAIJudge]
) -> None:
    """Two unparsable replies are retried; the third is validated and returned."""
    stub.script = [
        (200, "Sure! Here is my rating: great"),
        (200, '{"faithfulness": 5,'),
        (200, VALID),
    ]
    judgement = judge_for().judge(QUESTION, "In 1889 [1].", SOURCES, ["1887 to 1889"])
    assert judgement.attempts == 3
    assert judgement.error is None
    assert judgement.scores() == {
        "judge_failed": 0.0,
        "judge_faithfulness": 5.0,
        "judge_relevance": 4.0,
        "judge_completeness": 3.0,
    }
    assert len(stub.requests) == 3
    retry = stub.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! Here is my rating: great"}
    assert "invalid" in retry[-1]["content"]
    assert stub.requests[0]["response_format"]["type"] == "json_object"
    assert "Reference answers: 1887 to 1889" in stub.requests[0]["messages"][1]["content"]


def test_a_reply_failing_validation_is_retried(
    stub: StubJudge, judge_for: Callable[..., OpenAIJudge]
) -> None:
    """A score of 7 parses as JSON but fails validation: one retry."""
    bad = VALID.replace('"score": 5', '"score": 7')
    stub.script = [(200, bad), (200, VALID)]
    judgement = judge_for().judge(QUESTION, "1889 [1].", SOURCES)
    assert (judgement.attempts, len(stub.requests)) == (2, 2)


def test_transport_errors_are_retried(
    stub: StubJudge, judge_for: Callable[..., OpenAIJudge]
) -> None:
    """HTTP 503 twice, then an answer: the SDK's own retries are off, so exactly 3 calls."""
    stub.script = [(503, ""), (503, ""), (200, VALID)]
    judgement = judge_for().judge(QUESTION, "1889 [1].", SOURCES)
    assert (judgement.attempts, len(stub.requests)) == (3, 3)
    assert judgement.ratings is not None


def test_exhausted_retries_record_a_failure_instead_of_raising(
    stub: StubJudge, judge_for: Callable[..., OpenAIJudge]
) -> None:
    """retries=1: two invalid replies, then a recorded failure with the last error."""
    stub.script = [(200, "no"), (200, "still no")]
    judgement = judge_for(retries=1).judge(QUESTION, "1889 [1].", SOURCES)
    assert judgement.ratings is None
    assert judgement.attempts == 2
    assert judgement.error == "the reply holds no JSON object"
    assert judgement.scores() == {"judge_failed": 1.0}
    assert judgement.as_dict()["error"] == "the reply holds no JSON object"
    assert len(stub.requests) == 2


def test_a_server_refusing_json_object_gets_json_schema(
    stub: StubJudge, judge_for: Callable[..., OpenAIJudge]
) -> None:
    """A 400 on response_format json_object: the judge falls back to json_schema, without
    using an attempt, and keeps it for later calls."""
    stub.reject_formats = ("json_object",)
    judge = judge_for()
    judgement = judge.judge(QUESTION, "1889 [1].", SOURCES)
    assert judgement.attempts == 1
    assert judge.response_format == "json_schema"
    schema = stub.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["faithfulness", "relevance", "completeness"]
    judge.judge(QUESTION, "1889 [1].", SOURCES)
    assert len(stub.requests) == 2


def test_no_base_url_means_no_judge() -> None:
    """Empty eval.judge_base_url: lexical metrics only."""
    assert OpenAIJudge.from_settings(EvalSettings()) is None


def test_the_openai_package_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the SDK the judge cannot be built; the error says what to install."""
    monkeypatch.setitem(sys.modules, "openai", None)
    settings = EvalSettings(judge_base_url="http://127.0.0.1:9/v1", judge_model="m")
    with pytest.raises(MissingDependencyError, match=r"ragserve\[openai\]"):
        OpenAIJudge.from_settings(settings)


@pytest.mark.parametrize(
    "reply",
    [f"```json\n{VALID}\n```", f"Here you go: {VALID} Hope it helps."],
)
def test_parse_tolerates_fences_and_surrounding_text(reply: str) -> None:
    """The object is taken from between its outer braces."""
    assert parse_ratings(reply).completeness.score == 3


def test_parse_names_the_failing_field() -> None:
    """A missing criterion is reported by name."""
    with pytest.raises(InvalidJudgement, match="completeness"):
        parse_ratings('{"faithfulness": {"score": 1, "reason": "x"}, '
                      '"relevance": {"score": 1, "reason": "x"}}')  # fmt: skip


@pytest.mark.llm
def test_a_real_llama_cpp_server_judges_or_fails_cleanly(llama_server: str) -> None:
    """SmolLM2 behind llama.cpp's OpenAI-compatible server, its output constrained by the
    schema (json_object): valid ratings, or a recorded failure after every retry (a 135M
    model may not follow the rubric); it never raises."""
    judge = OpenAIJudge(llama_server, "smollm2", retries=2, backoff_s=0.0, max_tokens=256)
    try:
        judgement = judge.judge(QUESTION, "It was built from 1887 to 1889 [1].", SOURCES, ["1887"])
    finally:
        judge.close()
    assert judge.response_format == "json_object"
    if judgement.ratings is None:
        assert judgement.attempts == 3
        assert judgement.error
    else:
        assert 1 <= judgement.attempts <= 3
        for criterion in ("faithfulness", "relevance", "completeness"):
            assert 1 <= getattr(judgement.ratings, criterion).score <= 5


@pytest.mark.llm
def test_a_real_server_reply_cut_short_is_retried_then_recorded(llama_server: str) -> None:
    """8 completion tokens cannot hold the object: every attempt is invalid JSON, and the
    judgement records the failure after 1 + retries attempts."""
    judge = OpenAIJudge(llama_server, "smollm2", retries=2, backoff_s=0.0, max_tokens=8)
    try:
        judgement = judge.judge(QUESTION, "It was built from 1887 to 1889 [1].", SOURCES)
    finally:
        judge.close()
    assert judgement.ratings is None
    assert judgement.attempts == 3
    assert judgement.error is not None
    assert "JSON" in judgement.error  # no object at all, or an unterminated one
