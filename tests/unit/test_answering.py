"""An answer being generated: pieces, the final answer, the deadline and early close."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import replace

import pytest

from ragserve.answering import AnswerStream, replay
from ragserve.errors import BackendTimeout
from ragserve.types import Answer, Generation, Usage


def pieces(
    words: list[str], *, delay_s: float = 0.0, log: list[str] | None = None
) -> Generator[str, None, Generation]:
    try:
        for word in words:
            time.sleep(delay_s)
            yield word
    finally:
        if log is not None:
            log.append("closed")
    return Generation("".join(words), abstained=False, usage=Usage(7, 3), model="fake")


def stream_of(
    generator: Generator[str, None, Generation], deadline_s: float = 10.0
) -> AnswerStream:
    return AnswerStream(
        question="q?",
        standalone_question=None,
        sources=(),
        timings_ms={"embed": 1.0, "retrieve": 2.0},
        model="fake",
        pieces=generator,
        started=time.perf_counter(),
        deadline_s=deadline_s,
    )


def test_collect_joins_the_pieces_and_keeps_usage_and_timings() -> None:
    """Draining the stream gives the generator's answer, usage and every stage's timing."""
    answer = stream_of(pieces(["Paris", " [1]"])).collect()
    assert answer.text == "Paris [1]"
    assert answer.usage == Usage(7, 3)
    assert set(answer.timings_ms) == {"embed", "retrieve", "generate", "total"}


def test_on_done_sees_the_answer_once() -> None:
    """The completion callback runs once, with the final answer."""
    seen: list[Answer] = []
    stream = stream_of(pieces(["a", "b"]))
    stream.on_done = seen.append
    stream.collect()
    assert [a.text for a in seen] == ["ab"]


def test_a_stream_past_its_deadline_stops_with_a_timeout() -> None:
    """A generator slower than the deadline is stopped and closed, with BackendTimeout."""
    log: list[str] = []
    stream = stream_of(pieces(["a"] * 50, delay_s=0.02, log=log), deadline_s=0.05)
    with pytest.raises(BackendTimeout, match="no complete answer within"):
        stream.collect()
    assert log == ["closed"]
    assert stream.answer is None


def test_closing_early_closes_the_model_stream() -> None:
    """A client that leaves after one piece closes the model's generator (its lock frees)."""
    log: list[str] = []
    stream = stream_of(pieces(["a", "b", "c"], log=log))
    for _ in stream:
        break
    stream.close()
    stream.close()
    assert log == ["closed"]
    assert stream.answer is None


def test_a_replayed_answer_streams_its_text_in_words_with_zero_usage() -> None:
    """replay() yields word pieces that join to the cached text; the answer is marked cached,
    uses no tokens and has no generate stage."""
    cached = Answer("q?", "Zarnak  orbits Pelion\nevery 41 days [1].", (), False, {}, model="m")
    stream = replace(stream_of(replay(cached)), cached=True, timings_ms={"cache": 0.2})
    parts = list(stream)
    answer = stream.answer
    assert answer is not None
    assert len(parts) == 7
    assert "".join(parts) == cached.text == answer.text
    assert (answer.cached, answer.usage, answer.model) == (True, Usage(), "m")
    assert set(answer.timings_ms) == {"cache", "total"}
