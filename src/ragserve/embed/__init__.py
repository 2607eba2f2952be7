"""Embedders: ``onnx`` (local all-MiniLM-L6-v2) and ``openai`` (any /v1/embeddings server)."""

from __future__ import annotations

from ragserve.config import EmbedSettings
from ragserve.embed.base import Embedder, Tokenizer
from ragserve.registry import Registry

embedders: Registry[EmbedSettings, Embedder] = Registry("embedder")

__all__ = ["Embedder", "Tokenizer", "embedders"]


@embedders.register("onnx")
def _onnx(settings: EmbedSettings) -> Embedder:
    from ragserve.embed.onnx import OnnxEmbedder  # onnxruntime + the model packages

    return OnnxEmbedder(settings)


@embedders.register("openai")
def _openai(settings: EmbedSettings) -> Embedder:
    from ragserve.embed.openai import OpenAIEmbedder  # needs extra "openai"

    return OpenAIEmbedder.from_settings(settings)
