"""The embedder seam: texts in, L2-normalised float32 rows out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ragserve.types import Matrix


@runtime_checkable
class Tokenizer(Protocol):
    """The embedder's own tokenizer, used to size chunks in the tokens the model sees."""

    def count(self, text: str) -> int:
        """Number of model tokens in ``text`` (without special tokens)."""
        ...

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each model token in ``text`` (without special tokens)."""
        ...


class Embedder(Protocol):
    """Encodes passages and queries into the same vector space."""

    @property
    def model_id(self) -> str:
        """Identifies the vector space; part of the pipeline hash, so a change re-indexes."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """One normalised row per passage, batched internally."""
        ...

    def embed_query(self, text: str) -> Matrix:
        """A single normalised row (shape ``(1, dimension)``)."""
        ...
