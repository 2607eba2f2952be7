"""Cached values decode to what was encoded: answers with their full sources, and hits."""

from __future__ import annotations

import numpy as np
import pytest

from ragserve.cache.codec import decode_answer, decode_hits, encode_answer, encode_hits
from ragserve.types import Answer, Chunk, Hit, Source, Usage


def hit(n: int) -> Hit:
    chunk = Chunk(f"c{n}", f"d{n}", n, "Zarnak orbits Pelion. " * 50, 2, 10, 1110, 40, {"y": n})
    return Hit(chunk, float(np.float32(0.123456789 * n)), f"s{n}.txt", None, {"bm25": 1.5})


def test_an_answer_round_trips_with_its_sources() -> None:
    """Text, sources (chunk text, metadata, scores), abstention and model survive."""
    sources = (Source(1, hit(1)), Source(2, hit(2)))
    answer = Answer("q?", "It orbits [1].", sources, False, {"total": 5.0}, Usage(3, 4), "m")
    decoded = decode_answer(encode_answer(answer))
    assert (decoded.question, decoded.text, decoded.sources) == ("q?", answer.text, sources)
    assert (decoded.abstained, decoded.model, decoded.usage) == (False, "m", Usage())


def test_hits_round_trip_with_numpy_scores() -> None:
    """A float32 score from the store encodes as a float and decodes equal."""
    hits = [hit(1), Hit(hit(2).chunk, np.float32(0.5))]  # type: ignore[arg-type]
    assert decode_hits(encode_hits(hits)) == [hits[0], Hit(hit(2).chunk, 0.5)]


@pytest.mark.parametrize("data", [b"", b"\xff", b"[]", b'{"format": 99}'])
def test_foreign_bytes_are_refused(data: bytes) -> None:
    """Bytes this version did not write raise ValueError (the cache treats them as a miss)."""
    with pytest.raises(ValueError, match=r"cached value|not a cached"):
        decode_answer(data)
