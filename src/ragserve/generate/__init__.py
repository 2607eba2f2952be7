"""Generators: ``extractive`` (no model), ``llamacpp`` (local GGUF), ``openai`` (chat server)."""

from __future__ import annotations

from ragserve.config import LLMSettings
from ragserve.generate.base import Generator
from ragserve.registry import Registry

generators: Registry[LLMSettings, Generator] = Registry("generator")

__all__ = ["Generator", "generators"]
