"""Pipeline configurations: everything a collection's answers depend on besides its documents.

A :class:`PipelineConfig` bundles chunking, the embedder, retrieval (mode, fusion, weights,
top_k), reranking and the generator (provider, model, prompt). Configurations are stored by
name with a version per change (``store.experiments``); a collection uses one by default and
an experiment's variants are configurations too.

Two hashes identify a configuration: :meth:`PipelineConfig.config_hash` covers all of it (cache
keys carry it, eval runs record it) and :meth:`PipelineConfig.index_hash` only what changes the
stored chunks and vectors (chunking and the embedder): a collection moving to a configuration
with another index hash is re-indexed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragserve.config import (
    ChunkSettings,
    RerankSettings,
    RetrieveSettings,
    Settings,
)
from ragserve.errors import InputError

CONFIG_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MAX_SYSTEM_PROMPT_CHARS = 8_000


class IndexEmbed(BaseModel):
    """The embedder fields a configuration may choose; endpoints and keys stay server-side."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "onnx"
    variant: Literal["fp32", "int8", "int8-dynamic"] = "fp32"
    model: str = "all-MiniLM-L6-v2"
    max_tokens: int = Field(default=256, ge=16, le=512)
    dimensions: int | None = None


class Generation(BaseModel):
    """The generator fields a configuration may choose; endpoints and keys stay server-side.
    ``system_prompt`` replaces the built-in grounded prompt (it must keep asking for ``[n]``
    citations for citations to be read back)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "extractive"
    model: str = "SmolLM2-135M-Instruct"
    model_path: str | None = None
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    context_tokens: int = Field(default=2048, ge=256)
    system_prompt: str | None = Field(
        default=None, min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS
    )


class PipelineConfig(BaseModel):
    """A complete, resolved pipeline configuration (no field left to a server default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk: ChunkSettings = ChunkSettings()
    embed: IndexEmbed = IndexEmbed()
    retrieve: RetrieveSettings = RetrieveSettings()
    rerank: RerankSettings = RerankSettings()
    llm: Generation = Generation()

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        """The configuration the server's settings describe: what a collection without one
        uses."""
        return cls(
            chunk=settings.chunk,
            embed=IndexEmbed.model_validate(_pick(settings.embed, IndexEmbed)),
            retrieve=settings.retrieve,
            rerank=settings.rerank,
            llm=Generation.model_validate(_pick(settings.llm, Generation)),
        )

    @classmethod
    def resolve(cls, partial: dict[str, Any], base: PipelineConfig) -> PipelineConfig:
        """``partial`` (sections with some fields) laid over ``base``; ``InputError`` naming
        the field when the result is invalid."""
        if not isinstance(partial, dict):
            raise InputError("a pipeline configuration is a JSON object of sections")
        merged = base.model_dump(mode="json")
        for section, fields in partial.items():
            if section not in merged:
                known = ", ".join(sorted(merged))
                raise InputError(f"unknown configuration section {section!r} (known: {known})")
            if not isinstance(fields, dict):
                raise InputError(f"configuration section {section!r} must be an object")
            unknown = sorted(set(fields) - set(merged[section]))
            if unknown:
                known = ", ".join(sorted(merged[section]))
                raise InputError(
                    f"unknown field {section}.{unknown[0]} (fields of {section}: {known})"
                )
            merged[section] = {**merged[section], **fields}
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InputError(f"invalid configuration: {where}: {first['msg']}") from None

    def config_hash(self) -> str:
        """16 hex digits over the whole configuration."""
        return _digest(self.model_dump(mode="json"))

    def index_hash(self) -> str:
        """16 hex digits over what is stored per chunk: chunking and the embedder."""
        dumped = self.model_dump(mode="json")
        return _digest({"chunk": dumped["chunk"], "embed": dumped["embed"]})

    def settings(self, base: Settings) -> Settings:
        """``base`` with this configuration's sections in place (endpoints, keys, threads and
        timeouts kept from ``base``)."""
        embed = base.embed.model_copy(update=self.embed.model_dump())
        llm = base.llm.model_copy(update=self.llm.model_dump())
        return base.model_copy(
            update={
                "chunk": self.chunk,
                "embed": embed,
                "retrieve": self.retrieve,
                "rerank": self.rerank,
                "llm": llm,
            }
        )


def _pick(settings: BaseModel, model: type[BaseModel]) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in model.model_fields}


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
