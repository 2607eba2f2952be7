"""Cache keys: everything an answer depends on, hashed into a fixed-length key.

A key carries the tenant, the collection and its **version** (which rises on every ingest,
update or delete and never repeats), a fingerprint of the pipeline configuration, the
normalised question and the request's parameters. A change to any of them is a different
key, so nothing is ever invalidated by scanning: stale entries are simply never asked for
again and expire. Keys start with ``ragserve:cache:v1:<tenant hash>:`` so an administrator
can drop one tenant's entries by prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from ragserve import __version__
from ragserve.config import Settings
from ragserve.generate.prompt import SYSTEM_PROMPT

KEY_PREFIX = "ragserve:cache:v1:"
_SPACES = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.。？！…]+$")


def normalise_question(text: str) -> str:
    """NFKC, casefolded, whitespace collapsed, trailing ``?!.`` dropped: spellings of one
    question that no stage of the pipeline tells apart share a key."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _TRAILING.sub("", _SPACES.sub(" ", folded).strip())


def tenant_prefix(tenant: str) -> str:
    """The prefix of every key of ``tenant`` (its name hashed: keys never show it)."""
    return f"{KEY_PREFIX}{_digest(tenant)[:16]}:"


def retrieval_fingerprint(settings: Settings, pipeline_hash: str) -> str:
    """What retrieval results depend on besides the data: embedder and chunker (the pipeline
    hash), retrieval and reranking settings."""
    recipe = {
        "pipeline": pipeline_hash,
        "retrieve": settings.retrieve.model_dump(mode="json"),
        "rerank": settings.rerank.model_dump(mode="json"),
    }
    return _digest(_canonical(recipe))[:16]


def answer_fingerprint(settings: Settings, retrieval: str, generator_id: str) -> str:
    """Retrieval's fingerprint plus what generation depends on: the generator actually used
    (a tenant's own LLM names its server and model), its settings and the prompt template."""
    llm = settings.llm
    recipe = {
        "retrieval": retrieval,
        "generator": generator_id,
        "llm": [llm.provider, llm.model, llm.model_path, llm.temperature, llm.max_tokens],
        "context_tokens": llm.context_tokens,
        "condense": llm.condense,
        "prompt": _digest(llm.system_prompt or SYSTEM_PROMPT)[:16],
        "code": __version__,  # generators' code changes between releases
    }
    return _digest(_canonical(recipe))[:16]


def cache_key(
    kind: str,
    tenant: str,
    collection: str,
    version: int,
    fingerprint: str,
    question: str,
    params: Mapping[str, Any],
) -> str:
    """The key of one cached value; ``kind`` separates answers from search results."""
    scope = scope_key(kind, tenant, collection, version, fingerprint, params)
    return f"{scope}:{_digest(normalise_question(question))[:24]}"


def scope_key(
    kind: str,
    tenant: str,
    collection: str,
    version: int,
    fingerprint: str,
    params: Mapping[str, Any],
) -> str:
    """Everything of a key but the question: the semantic cache compares questions within it."""
    material = _canonical([tenant, collection, version, fingerprint, dict(params)])
    return f"{tenant_prefix(tenant)}{kind}:{_digest(material)[:24]}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
