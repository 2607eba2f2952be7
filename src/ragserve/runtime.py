"""Pipelines at run time: a configuration with its embedder, chunker, reranker and generator.

One service serves collections bound to different configurations and experiment variants
side by side. :class:`Pipelines` builds each :class:`Pipeline` once per configuration hash and
shares the heavy parts between them: configurations naming the same embedder (or generator)
settings use one loaded model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from pydantic import BaseModel

from ragserve.cache.keys import answer_fingerprint, retrieval_fingerprint
from ragserve.config import EmbedSettings, LLMSettings, Settings
from ragserve.embed import Embedder, embedders
from ragserve.generate import Generator, generators
from ragserve.ingest.chunking import Chunker
from ragserve.ingestion import sha256
from ragserve.pipeline import PipelineConfig
from ragserve.rerank import Reranker, rerankers

T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Pipeline:
    """Everything a query or an ingest of one configuration runs with.

    ``ref`` names the stored configuration (``name@version``), None for the server's own.
    ``pipeline_hash`` is what documents record (embedder and chunker, as built), so an index
    made by another configuration is recognised.
    """

    config: PipelineConfig
    ref: str | None
    settings: Settings
    embedder: Embedder
    chunker: Chunker
    reranker: Reranker
    generator: Generator
    pipeline_hash: str
    config_hash: str
    index_hash: str
    retrieval_fingerprint: str

    def answer_fingerprint(self, generator_id: str) -> str:
        """The answer cache's fingerprint for this pipeline answered by ``generator_id``."""
        return answer_fingerprint(self.settings, self.retrieval_fingerprint, generator_id)


class Pipelines:
    """Builds and keeps pipelines by configuration hash; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        reranker: Reranker,
        generator: Generator,
    ) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._embedders: dict[str, Embedder] = {_key(settings.embed): embedder}
        self._generators: dict[str, Generator] = {_key(settings.llm): generator}
        self._rerankers: dict[str, Reranker] = {_key(settings.rerank): reranker}
        self._pipelines: dict[str, Pipeline] = {}
        self.default = self._build(PipelineConfig.from_settings(settings), None)

    def get(self, config: PipelineConfig, ref: str | None = None) -> Pipeline:
        """The pipeline of ``config`` (the default one when it is the server's own)."""
        config_hash = config.config_hash()
        if config_hash == self.default.config_hash and ref is None:
            return self.default
        with self._lock:
            found = self._pipelines.get(config_hash)
            if found is None:
                found = self._pipelines[config_hash] = (
                    self.default if config_hash == self.default.config_hash
                    else self._build(config, ref)
                )  # fmt: skip
            return found if found.ref == ref else replace(found, ref=ref)

    def _build(self, config: PipelineConfig, ref: str | None) -> Pipeline:
        settings = config.settings(self.settings)
        embedder = _shared(self._embedders, settings.embed, _make_embedder)
        generator = _shared(self._generators, settings.llm, _make_generator)
        reranker = _shared(self._rerankers, settings.rerank, lambda s: rerankers.create(s.name, s))
        chunker = Chunker(embedder.tokenizer, settings.chunk.size, settings.chunk.overlap)
        pipeline_hash = document_pipeline_hash(embedder, settings.embed.max_tokens, chunker)
        return Pipeline(
            config=config,
            ref=ref,
            settings=settings,
            embedder=embedder,
            chunker=chunker,
            reranker=reranker,
            generator=generator,
            pipeline_hash=pipeline_hash,
            config_hash=config.config_hash(),
            index_hash=config.index_hash(),
            # The configuration's hash is in every key: two configurations never share one.
            retrieval_fingerprint=retrieval_fingerprint(
                settings, f"{pipeline_hash}:{config.config_hash()}"
            ),
        )

    def replace_default_generator(self, generator: Generator) -> None:
        """Answer with ``generator`` wherever the server's own configuration answers."""
        with self._lock:
            self.default = replace(self.default, generator=generator)
            self._pipelines = {
                h: p for h, p in self._pipelines.items() if h != self.default.config_hash
            }


def document_pipeline_hash(embedder: Embedder, max_tokens: int, chunker: Chunker) -> str:
    """Everything that changes what is stored for a document."""
    recipe = {
        "embedder": embedder.model_id,
        "max_tokens": max_tokens,
        "chunker": chunker.fingerprint,
    }
    return sha256(json.dumps(recipe, sort_keys=True).encode())[:16]


def _make_embedder(settings: EmbedSettings) -> Embedder:
    return embedders.create(settings.provider, settings)


def _make_generator(settings: LLMSettings) -> Generator:
    return generators.create(settings.provider, settings)


def _shared(cache: dict[str, T], settings: S, make: Callable[[S], T]) -> T:
    """One object per distinct settings: two configurations of one embedder share it."""
    key = _key(settings)
    found = cache.get(key)
    if found is None:
        found = cache[key] = make(settings)
    return found


def _key(settings: BaseModel) -> str:
    return json.dumps(settings.model_dump(mode="json"), sort_keys=True, default=str)
