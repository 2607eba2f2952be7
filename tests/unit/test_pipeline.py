"""Pipeline configurations: resolution over a base, validation, hashes, and the run-time
pipelines built from them (models shared, keys apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragserve.config import Settings
from ragserve.errors import InputError
from ragserve.generate.prompt import SYSTEM_PROMPT, build_prompt
from ragserve.pipeline import PipelineConfig
from ragserve.service import build_service


def test_a_partial_configuration_is_laid_over_the_base() -> None:
    base = PipelineConfig.from_settings(Settings(retrieve={"top_k": 7}))
    config = PipelineConfig.resolve({"retrieve": {"mode": "bm25"}, "rerank": {"name": "mmr"}}, base)
    assert config.retrieve.mode == "bm25"
    assert config.retrieve.top_k == 7  # kept from the base
    assert config.rerank.name == "mmr"
    assert config.chunk == base.chunk


@pytest.mark.parametrize(
    ("partial", "fragment"),
    [
        ({"retriever": {}}, "unknown configuration section 'retriever'"),
        ({"chunk": {"sise": 10}}, "unknown field chunk.sise"),
        ({"chunk": 5}, "section 'chunk' must be an object"),
        ({"retrieve": {"mode": "nearest"}}, "retrieve.mode"),
        ({"chunk": {"size": 64, "overlap": 64}}, "overlap must be smaller"),
        ({"llm": {"api_key": "secret"}}, "unknown field llm.api_key"),  # keys stay server-side
    ],
)
def test_invalid_configurations_name_the_field(partial: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        PipelineConfig.resolve(partial, PipelineConfig())


def test_hashes_tell_what_changed() -> None:
    base = PipelineConfig()
    retrieval = PipelineConfig.resolve({"retrieve": {"dense_weight": 0.3}}, base)
    chunking = PipelineConfig.resolve({"chunk": {"size": 128}}, base)
    assert PipelineConfig.resolve({}, base).config_hash() == base.config_hash()
    assert retrieval.config_hash() != base.config_hash()
    assert retrieval.index_hash() == base.index_hash()  # same chunks and vectors
    assert chunking.index_hash() != base.index_hash()
    assert len(base.config_hash()) == len(base.index_hash()) == 16


def test_settings_keep_endpoints_and_take_the_configuration() -> None:
    settings = Settings(llm={"base_url": "http://llm:8080/v1", "timeout_s": 5})
    config = PipelineConfig.resolve({"llm": {"temperature": 0.4}}, PipelineConfig())
    applied = config.settings(settings)
    assert applied.llm.temperature == 0.4
    assert applied.llm.base_url == "http://llm:8080/v1"
    assert applied.llm.timeout_s == 5


def test_a_system_prompt_replaces_the_built_in_one() -> None:
    assert build_prompt("Why?", []).system == SYSTEM_PROMPT
    assert build_prompt("Why?", [], system="Answer in French [n].").system == (
        "Answer in French [n]."
    )


def test_pipelines_share_models_and_never_share_cache_keys(tmp_path: Path) -> None:
    service = build_service(Settings(data_dir=tmp_path))
    try:
        default = service.pipelines.default
        lexical = service.pipelines.get(
            PipelineConfig.resolve({"retrieve": {"mode": "bm25"}}, default.config), "lexical@1"
        )
        prompted = service.pipelines.get(
            PipelineConfig.resolve({"llm": {"system_prompt": "Be brief [n]."}}, default.config)
        )
        assert lexical.embedder is default.embedder  # one model loaded
        assert lexical.pipeline_hash == default.pipeline_hash  # same index
        assert lexical.ref == "lexical@1"
        fingerprints = {
            p.answer_fingerprint(p.generator.model_id) for p in (default, lexical, prompted)
        }
        assert len(fingerprints) == 3
        assert prompted.settings.llm.system_prompt == "Be brief [n]."
        same = service.pipelines.get(default.config, "control@1")
        assert same.ref == "control@1"
        assert same.embedder is default.embedder
    finally:
        service.close()
