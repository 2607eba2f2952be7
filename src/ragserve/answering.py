"""An answer being generated: sources known up front, text arriving in pieces.

:class:`AnswerStream` is what the API streams as Server-Sent Events and what
``RagService.query`` drains. It enforces the generation deadline between pieces, so a slow
local model is stopped (and its lock released) instead of holding a worker forever.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from ragserve.errors import BackendTimeout
from ragserve.types import Answer, Generation, Source

PieceStream = Generator[str, None, Generation]


@dataclass
class AnswerStream:
    """Iterate for the answer's text pieces; ``answer`` is set once the iteration ends.

    ``close()`` stops the generator early (a client went away); it is safe to call twice.
    """

    question: str
    standalone_question: str | None
    sources: tuple[Source, ...]
    timings_ms: dict[str, float]
    model: str
    pieces: PieceStream
    started: float
    deadline_s: float
    on_done: Callable[[Answer], None] | None = None
    cached: bool = False
    answer_id: str = ""
    config: str | None = None
    experiment: str | None = None
    variant: str | None = None
    answer: Answer | None = None
    _parts: list[str] = field(default_factory=list)
    _closed: bool = False

    def __iter__(self) -> Iterator[str]:
        generate_started = time.perf_counter()
        deadline = generate_started + self.deadline_s
        try:
            while True:
                try:
                    piece = next(self.pieces)
                except StopIteration as stop:
                    self._finish(stop.value, generate_started)
                    return
                self._parts.append(piece)
                yield piece
                if time.perf_counter() > deadline:
                    raise BackendTimeout(
                        "llm",
                        f"no complete answer within {self.deadline_s:g} s; "
                        "raise llm.timeout_s or lower max_tokens",
                    )
        finally:
            self.close()

    def collect(self) -> Answer:
        """Drain the stream and return the answer."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pieces.close()

    def _finish(self, generation: Generation | None, generate_started: float) -> None:
        text = "".join(self._parts)
        if generation is None:  # a generator that returned nothing: rebuild from the pieces
            generation = Generation(text=text, abstained=False, model=self.model)
        now = time.perf_counter()
        if not self.cached:  # a replay generates nothing
            self.timings_ms["generate"] = round((now - generate_started) * 1000, 3)
        self.timings_ms["total"] = round((now - self.started) * 1000, 3)
        self.answer = Answer(
            question=self.question,
            text=generation.text,
            sources=self.sources,
            abstained=generation.abstained,
            timings_ms=self.timings_ms,
            usage=generation.usage,
            model=generation.model or self.model,
            standalone_question=self.standalone_question,
            cached=self.cached,
            id=self.answer_id,
            config=self.config,
            experiment=self.experiment,
            variant=self.variant,
        )
        if self.on_done is not None:
            self.on_done(self.answer)


_WORDS = re.compile(r"\S+\s*|\s+")


def replay(answer: Answer) -> PieceStream:
    """A cached answer's text as word pieces (joined, they are the text), then its
    ``Generation`` with zero usage: nothing was generated."""
    yield from _WORDS.findall(answer.text)
    return Generation(text=answer.text, abstained=answer.abstained, model=answer.model)
