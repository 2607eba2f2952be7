"""The generator seam: a question and numbered sources in, a grounded answer out."""

from __future__ import annotations

from collections.abc import Generator as PieceStream
from collections.abc import Sequence
from typing import Protocol

from ragserve.types import Generation, Source


class Generator(Protocol):
    @property
    def model_id(self) -> str: ...

    def generate(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generation:
        """Answer from the sources only, citing them as ``[n]``; abstain when they do not
        contain the answer. ``max_tokens`` lowers the configured completion budget."""
        ...

    def stream(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> PieceStream[str, None, Generation]:
        """Yield the answer text in pieces (joined, they equal ``generate(...).text``); the
        generator's return value is the ``Generation``."""
        ...
