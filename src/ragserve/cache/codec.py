"""Cached values as JSON bytes: answers with their full sources, and search hits.

A decoded answer equals the one encoded (chunks keep their whole text, so snippets and
citations come out identical); only timings and usage are the replaying request's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ragserve.types import Answer, Chunk, Hit, Source, Usage

FORMAT = 1


def encode_answer(answer: Answer) -> bytes:
    return _dump(
        {
            "format": FORMAT,
            "question": answer.question,
            "text": answer.text,
            "abstained": answer.abstained,
            "model": answer.model,
            "sources": [[s.number, _hit(s.hit)] for s in answer.sources],
        }
    )


def decode_answer(data: bytes) -> Answer:
    """The cached answer; raises ``ValueError`` for bytes this version did not write."""
    value = _load(data)
    return Answer(
        question=value["question"],
        text=value["text"],
        sources=tuple(Source(number, _unhit(hit)) for number, hit in value["sources"]),
        abstained=value["abstained"],
        timings_ms={},
        usage=Usage(),
        model=value["model"],
    )


def encode_hits(hits: Sequence[Hit]) -> bytes:
    return _dump({"format": FORMAT, "hits": [_hit(hit) for hit in hits]})


def decode_hits(data: bytes) -> list[Hit]:
    return [_unhit(hit) for hit in _load(data)["hits"]]


def _hit(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "chunk": [c.id, c.document_id, c.ordinal, c.text, c.page, c.start, c.end, c.token_count],
        "metadata": c.metadata,
        "score": float(hit.score),
        "source": hit.document_source,
        "title": hit.document_title,
        "scores": {name: float(score) for name, score in hit.scores.items()},
    }


def _unhit(value: dict[str, Any]) -> Hit:
    id_, document_id, ordinal, text, page, start, end, tokens = value["chunk"]
    chunk = Chunk(id_, document_id, ordinal, text, page, start, end, tokens, value["metadata"])
    return Hit(chunk, value["score"], value["source"], value["title"], value["scores"])


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _load(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a cached value: {exc}") from exc
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ValueError("cached value of another format")
    return value
