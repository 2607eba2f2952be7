"""Behaviour every embedder must have, run against each real embedder variant.

Add a backend by adding a parameter to the ``embedder`` fixture; everything below must hold.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import get_args

import numpy as np
import pytest

from ragserve.config import EmbedSettings
from ragserve.embed import Embedder, Tokenizer, embedders

MIXED_LENGTHS = [
    "Aspirin lowers the risk of heart attack.",
    "",
    "Vitamin D deficiency is associated with a higher risk of fractures in older adults, "
    "according to a meta-analysis of randomised controlled trials.",
    "Tumours",
    "The influenza vaccine reduces hospital admissions among elderly people living in care "
    "homes; the effect was largest in the winters when the vaccine matched circulating strains.",
    "Smoking causes lung cancer.",
    "Gut microbiota composition differs between lean and obese twins.",
]


# every ONNX variant the settings accept, so a new variant is covered as soon as it is listed
BACKENDS = [f"onnx-{v}" for v in get_args(EmbedSettings.model_fields["variant"].annotation)]


@pytest.fixture(scope="module", params=BACKENDS)
def make_embedder(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Embedder]:
    """A factory for one backend: ``make_embedder(batch_size=..., max_tokens=...)``."""
    provider, variant = str(request.param).split("-", 1)
    cache_dir = tmp_path_factory.mktemp("models")
    built: dict[tuple[int, int], Embedder] = {}

    def make(batch_size: int = 32, max_tokens: int = 256) -> Embedder:
        key = (batch_size, max_tokens)
        if key not in built:
            settings = EmbedSettings(
                provider=provider, variant=variant, batch_size=batch_size,
                max_tokens=max_tokens, cache_dir=cache_dir,
            )  # fmt: skip
            built[key] = embedders.create(provider, settings)
        return built[key]

    return make


@pytest.fixture(scope="module")
def embedder(make_embedder: Callable[..., Embedder]) -> Embedder:
    return make_embedder()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_documents_are_normalised_float32_rows(embedder: Embedder) -> None:
    """One float32 row of the advertised dimension per text, each of unit length."""
    vectors = embedder.embed_documents(MIXED_LENGTHS)
    assert (len(MIXED_LENGTHS), embedder.dimension) == vectors.shape
    assert np.float32 == vectors.dtype
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_query_is_one_normalised_row(embedder: Embedder) -> None:
    """embed_query returns shape (1, dimension), float32, unit length."""
    vector = embedder.embed_query("does aspirin prevent heart attacks?")
    assert (1, embedder.dimension) == vector.shape
    assert np.float32 == vector.dtype
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_no_texts_give_an_empty_matrix(embedder: Embedder) -> None:
    """An empty list yields a (0, dimension) float32 matrix, not an error."""
    vectors = embedder.embed_documents([])
    assert (0, embedder.dimension) == vectors.shape
    assert np.float32 == vectors.dtype


def test_a_paraphrase_scores_above_an_unrelated_text(embedder: Embedder) -> None:
    """A paraphrase is closer to its sentence than an unrelated sentence is."""
    a, paraphrase, unrelated = embedder.embed_documents(
        [
            "Smoking causes lung cancer.",
            "Lung cancer is caused by tobacco smoking.",
            "The stock market fell sharply on Tuesday.",
        ]
    )
    assert cosine(a, paraphrase) > cosine(a, unrelated) + 0.3


def test_a_query_retrieves_its_passage(embedder: Embedder) -> None:
    """Query and passage vectors share one space: the matching passage ranks first."""
    passages = embedder.embed_documents(MIXED_LENGTHS)
    query = embedder.embed_query("Does a lack of vitamin D make bones break more easily?")
    assert int(np.argmax(passages @ query[0])) == 2


def test_embedding_is_deterministic(embedder: Embedder) -> None:
    """The same texts give the same vectors on every call."""
    first = embedder.embed_documents(MIXED_LENGTHS)
    second = embedder.embed_documents(MIXED_LENGTHS)
    np.testing.assert_array_equal(first, second)


def test_batching_and_padding_do_not_change_vectors(
    make_embedder: Callable[..., Embedder],
) -> None:
    """A text's vector is the same alone, in small batches and in one padded batch."""
    alone = np.vstack([make_embedder().embed_documents([t]) for t in MIXED_LENGTHS])
    batched_by_3 = make_embedder(batch_size=3).embed_documents(MIXED_LENGTHS)
    all_in_one = make_embedder().embed_documents(MIXED_LENGTHS)
    np.testing.assert_allclose(batched_by_3, alone, atol=1e-5)
    np.testing.assert_allclose(all_in_one, alone, atol=1e-5)


def test_rows_come_back_in_input_order(make_embedder: Callable[..., Embedder]) -> None:
    """Length-sorted batching is invisible: reversing the input reverses the rows."""
    embedder = make_embedder(batch_size=2)
    forward = embedder.embed_documents(MIXED_LENGTHS)
    backward = embedder.embed_documents(MIXED_LENGTHS[::-1])
    np.testing.assert_allclose(backward[::-1], forward, atol=1e-5)


def test_a_query_equals_the_same_text_as_a_document(embedder: Embedder) -> None:
    """The model is symmetric: a query is embedded exactly like a one-text document."""
    text = "Gut microbiota composition differs between lean and obese twins."
    np.testing.assert_allclose(
        embedder.embed_query(text), embedder.embed_documents([text]), atol=1e-5
    )


def test_long_texts_are_truncated_at_max_tokens(make_embedder: Callable[..., Embedder]) -> None:
    """A 2,000-word text embeds; words beyond max_tokens do not change its vector."""
    embedder = make_embedder(max_tokens=64)
    head = " ".join(f"protein{i % 50} binds receptor{i % 7}" for i in range(100))
    long_a = head + " " + "cell " * 2000
    long_b = head + " " + "galaxy " * 2000
    vectors = embedder.embed_documents([long_a, long_b])
    assert (2, embedder.dimension) == vectors.shape
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_tokenizer_counts_and_locates_the_models_tokens(embedder: Embedder) -> None:
    """The tokenizer satisfies the Tokenizer protocol; its spans lie in order inside the text."""
    tokenizer = embedder.tokenizer
    assert isinstance(tokenizer, Tokenizer)
    text = "Aspirin lowers the risk of heart attack."
    offsets = tokenizer.offsets(text)
    assert tokenizer.count(text) == len(offsets)
    assert (0, len(text)) == (offsets[0][0], offsets[-1][1])
    assert all(a < b <= c for (a, b), (c, _) in pairwise(offsets))


def test_concurrent_calls_match_sequential_ones(embedder: Embedder) -> None:
    """Four threads embedding at once get the same vectors as one thread does."""
    expected = [embedder.embed_documents([t]) for t in MIXED_LENGTHS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        actual = list(pool.map(lambda t: embedder.embed_documents([t]), MIXED_LENGTHS))
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_model_id_ignores_settings_that_keep_the_vector_space(
    make_embedder: Callable[..., Embedder],
) -> None:
    """model_id is non-empty and does not change with the batch size."""
    assert make_embedder().model_id
    assert make_embedder().model_id == make_embedder(batch_size=3).model_id
