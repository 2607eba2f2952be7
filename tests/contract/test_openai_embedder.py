"""The OpenAI-compatible embedder against a real llama-cpp-python server (SmolLM2, mean-pooled)."""

from __future__ import annotations

import numpy as np
import pytest

from ragserve.config import EmbedSettings
from ragserve.embed import embedders
from ragserve.embed.openai import OpenAIEmbedder
from ragserve.errors import BackendError, BackendUnavailable

pytestmark = pytest.mark.llm

TEXTS = [
    "The Normans gave their name to Normandy, a region in France.",
    "Photosynthesis converts light energy into chemical energy.",
    "Rollo led the Norse raiders.",
    "Water boils at 100 degrees Celsius at sea level.",
    "A short one.",
]
SMOLLM2_WIDTH = 576


@pytest.fixture(scope="module")
def embedder(llama_server: str) -> OpenAIEmbedder:
    """Built through the registry, two texts a request so batching is exercised."""
    settings = EmbedSettings(
        provider="openai", base_url=llama_server, model="smollm2", batch_size=2
    )
    built = embedders.create("openai", settings)
    assert isinstance(built, OpenAIEmbedder)
    return built


def test_rows_are_normalised_float32_of_the_discovered_width(embedder: OpenAIEmbedder) -> None:
    """One unit-length float32 row per text; the width comes from the server's response."""
    matrix = embedder.embed_documents(TEXTS)

    assert matrix.shape == (len(TEXTS), SMOLLM2_WIDTH)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert embedder.dimension == SMOLLM2_WIDTH


def test_embedding_is_deterministic(embedder: OpenAIEmbedder) -> None:
    """The same texts embed to the same rows."""
    np.testing.assert_allclose(
        embedder.embed_documents(TEXTS), embedder.embed_documents(TEXTS), atol=1e-5
    )


def test_batched_rows_match_single_queries(embedder: OpenAIEmbedder) -> None:
    """Rows embedded in batches equal each text embedded alone, in the same order."""
    batched = embedder.embed_documents(TEXTS)
    single = np.concatenate([embedder.embed_query(text) for text in TEXTS])

    assert single.shape == (len(TEXTS), SMOLLM2_WIDTH)
    np.testing.assert_allclose(batched, single, atol=2e-3)
    assert float(np.min(np.sum(batched * single, axis=1))) > 0.9999


def test_related_texts_are_closer_than_unrelated(embedder: OpenAIEmbedder) -> None:
    """The space carries meaning: Normandy is nearer Norse raiders than photosynthesis."""
    normandy, photosynthesis, rollo = embedder.embed_documents(TEXTS[:3])

    assert float(normandy @ rollo) > float(normandy @ photosynthesis)


def test_identity_and_tokenizer(embedder: OpenAIEmbedder, llama_server: str) -> None:
    """The model id names the server and model; the tokenizer counts MiniLM WordPieces."""
    assert embedder.model_id == f"openai:{llama_server}:smollm2"
    assert embedder.tokenizer.count("Rollo led the Norse raiders.") == 7  # roll ##o led …
    assert embedder.embed_documents([]).shape == (0, SMOLLM2_WIDTH)


def test_a_different_width_than_configured_is_an_error(llama_server: str) -> None:
    """Configured dimensions the server does not honour fail instead of mixing widths."""
    embedder = OpenAIEmbedder(llama_server, "smollm2", dimensions=384, max_retries=0)

    with pytest.raises(BackendError, match="576-dimensional vectors, expected 384"):
        embedder.embed_query("Rollo")


def test_unreachable_server_is_unavailable(closed_port: int) -> None:
    """A closed port raises BackendUnavailable."""
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{closed_port}/v1", "m", max_retries=0)

    with pytest.raises(BackendUnavailable, match="cannot reach"):
        embedder.embed_documents(["text"])
