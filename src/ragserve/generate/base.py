"""The generator seam: a question and numbered sources in, a grounded answer out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from ragserve.types import Generation, Source


class Generator(Protocol):
    @property
    def model_id(self) -> str: ...

    def generate(self, question: str, sources: Sequence[Source]) -> Generation:
        """Answer from the sources only, citing them as ``[n]``; abstain when they do not
        contain the answer."""
        ...

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[str]:
        """Yield the answer text in pieces; joined, they equal ``generate(...).text``."""
        ...
