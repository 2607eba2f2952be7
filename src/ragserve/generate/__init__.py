"""Generators: ``extractive`` (no model), ``llamacpp`` (local GGUF), ``openai`` (chat server)."""

from __future__ import annotations

from ragserve.config import LLMSettings
from ragserve.generate.base import Generator
from ragserve.registry import Registry

generators: Registry[LLMSettings, Generator] = Registry("generator")

__all__ = ["Generator", "generators"]


@generators.register("extractive")
def _extractive(settings: LLMSettings) -> Generator:
    from ragserve.generate.extractive import ExtractiveGenerator

    return ExtractiveGenerator()


@generators.register("llamacpp")
def _llamacpp(settings: LLMSettings) -> Generator:
    from ragserve.generate.llamacpp import LlamaCppGenerator  # needs extra "llm-local"

    return LlamaCppGenerator.from_settings(settings)


@generators.register("openai")
def _openai(settings: LLMSettings) -> Generator:
    from ragserve.generate.openai import OpenAIGenerator  # needs extra "openai"

    return OpenAIGenerator.from_settings(settings)
