"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` server (TEI, vLLM, Ollama,
llama.cpp server, OpenAI) through the official ``openai`` SDK (extra ``openai``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragserve.config import EmbedSettings
from ragserve.embed.tokenizer import WordPieceTokenizer
from ragserve.errors import BackendError
from ragserve.openai_compat import OPENAI_URL, backend_errors, openai_client
from ragserve.types import Matrix


class OpenAIEmbedder:
    """L2-normalised float32 rows from a remote embedding model, ``batch_size`` texts a call.

    The dimension is ``dimensions`` when given (and then sent to the server, which may
    shorten its vectors), otherwise whatever the first response holds. The tokenizer, used
    only to size chunks, is all-MiniLM-L6-v2's WordPiece: the server's own tokenizer is not
    reachable through the API, so chunk sizes are an approximation of what the server
    counts — keep ``max_tokens`` well under the server model's limit.
    """

    def __init__(
        self,
        base_url: str | None,
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 32,
        dimensions: int | None = None,
        max_tokens: int = 256,
        timeout_s: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        self._client = openai_client(
            base_url, api_key, timeout_s=timeout_s, max_retries=max_retries
        )
        self._url = str(self._client.base_url)
        self.model = model
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._requested_dimensions = dimensions
        self._dimension = dimensions
        self._model_id = f"openai:{base_url or OPENAI_URL}:{model}"
        self._tokenizer: WordPieceTokenizer | None = None

    @classmethod
    def from_settings(cls, settings: EmbedSettings) -> OpenAIEmbedder:
        return cls(
            settings.base_url,
            settings.model,
            api_key=settings.api_key,
            batch_size=settings.batch_size,
            dimensions=settings.dimensions,
            max_tokens=settings.max_tokens,
            timeout_s=settings.timeout_s,
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        """The vector size; asks the server once if neither configured nor seen yet."""
        if self._dimension is None:
            self.embed_query("dimension probe")
        assert self._dimension is not None  # set by the first response
        return self._dimension

    @property
    def tokenizer(self) -> WordPieceTokenizer:
        if self._tokenizer is None:
            self._tokenizer = WordPieceTokenizer.minilm(self.max_tokens)
        return self._tokenizer

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = [
            self._embed_batch(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(batches, axis=0)

    def embed_query(self, text: str) -> Matrix:
        return self._embed_batch([text])

    def _embed_batch(self, texts: list[str]) -> Matrix:
        extra: dict[str, Any] = {}
        if self._requested_dimensions is not None:
            extra["dimensions"] = self._requested_dimensions
        with backend_errors("openai-embeddings", self._url):
            response = self._client.embeddings.create(
                model=self.model, input=texts, encoding_format="float", **extra
            )
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise BackendError(
                "openai-embeddings", f"{self._url} returned {len(rows)} rows for {len(texts)} texts"
            )
        try:
            matrix = np.asarray([row.embedding for row in rows], dtype=np.float32)
        except ValueError:  # ragged rows: numpy refuses them
            matrix = np.zeros((0, 0, 0), dtype=np.float32)
        if matrix.ndim != 2:  # e.g. one vector per token: the server does no pooling
            raise BackendError(
                "openai-embeddings",
                f"{self._url} did not return one flat vector per text; enable pooling on it",
            )
        self._check_dimension(matrix.shape[1])
        return _normalise(matrix)

    def _check_dimension(self, size: int) -> None:
        if self._dimension is None:
            self._dimension = size
        elif size != self._dimension:
            raise BackendError(
                "openai-embeddings",
                f"{self._url} returned {size}-dimensional vectors, expected {self._dimension}",
            )


def _normalise(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0.0, 1.0, norms)).astype(np.float32, copy=False)
