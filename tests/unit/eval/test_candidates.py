"""Which configurations an evaluation runs: files, stored versions, an experiment's variants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragserve.config import StoreSettings
from ragserve.errors import ConfigNotFound, ExperimentNotFound, InputError
from ragserve.eval.candidates import read_config_file, resolve_candidates
from ragserve.pipeline import PipelineConfig
from ragserve.store import Store, open_store
from ragserve.store.experiments import ExperimentRecord, Variant

BASE = PipelineConfig()
TENANT = "default"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The embedded SQLite store with two versions of ``mmr`` and an experiment."""
    opened = open_store(StoreSettings(url=f"sqlite:///{tmp_path / 'ragserve.db'}"))
    for lam in (0.5, 0.9):
        config = PipelineConfig.resolve({"rerank": {"name": "mmr", "mmr_lambda": lam}}, BASE)
        opened.experiments.put_config(
            TENANT, "mmr", config.model_dump(mode="json"),
            config_hash=config.config_hash(), index_hash=config.index_hash(),
        )  # fmt: skip
    opened.experiments.put_config(
        TENANT, "plain", BASE.model_dump(mode="json"),
        config_hash=BASE.config_hash(), index_hash=BASE.index_hash(),
    )  # fmt: skip
    variants = (Variant("control", "plain", 1, 0.5), Variant("mmr", "mmr", 1, 0.5))
    opened.experiments.create_experiment(
        ExperimentRecord(id="e" * 32, tenant=TENANT, name="mmr-test", collection="kb",
                         variants=variants)
    )  # fmt: skip
    yield opened
    opened.close()


def test_files_are_laid_over_the_base(store: Store, tmp_path: Path) -> None:
    """A TOML and a JSON file, labelled by their stems, each changing one field."""
    (tmp_path / "bm25.toml").write_text('[retrieve]\nmode = "bm25"\n')
    (tmp_path / "k3.json").write_text('{"retrieve": {"top_k": 3}}')
    found = resolve_candidates(
        store.experiments, TENANT, BASE, files=[tmp_path / "bm25.toml", tmp_path / "k3.json"]
    )
    assert [c.label for c in found] == ["bm25", "k3"]
    assert (found[0].config.retrieve.mode, found[0].config.retrieve.top_k) == ("bm25", 5)
    assert (found[1].config.retrieve.mode, found[1].config.retrieve.top_k) == ("hybrid", 3)


def test_stored_configurations_by_name_and_version(store: Store) -> None:
    """NAME is the latest version, NAME@1 the first; each is labelled by its reference."""
    found = resolve_candidates(store.experiments, TENANT, BASE, config_names=["mmr", "mmr@1"])
    assert [(c.label, c.config_name) for c in found] == [("mmr@2", "mmr@2"), ("mmr@1", "mmr@1")]
    assert [c.config.rerank.mmr_lambda for c in found] == [0.9, 0.5]


def test_every_variant_of_an_experiment(store: Store) -> None:
    """One candidate per variant, carrying the experiment id and the variant name."""
    found = resolve_candidates(store.experiments, TENANT, BASE, experiment="mmr-test")
    assert [(c.label, c.variant, c.experiment_id) for c in found] == [
        ("mmr-test:control", "control", "e" * 32),
        ("mmr-test:mmr", "mmr", "e" * 32),
    ]
    assert found[1].config.rerank.name == "mmr"


def test_nothing_named_means_the_base_and_mode_and_label_apply(store: Store) -> None:
    """The base configuration alone; --mode overrides it, --label names it."""
    (only,) = resolve_candidates(store.experiments, TENANT, BASE, mode="dense", label="x")
    assert (only.label, only.config.retrieve.mode) == ("x", "dense")
    several = resolve_candidates(
        store.experiments, TENANT, BASE, config_names=["mmr", "plain"], label="nightly"
    )
    assert [c.label for c in several] == ["nightly:mmr@2", "nightly:plain@1"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.toml", "[retrieve\n", "is not valid"),
        ("bad.json", "{", "is not valid"),
        ("list.json", "[1, 2]", "must hold an object"),
        ("unknown.json", '{"retriever": {}}', "unknown configuration section"),
        ("invalid.json", '{"retrieve": {"top_k": 0}}', "retrieve.top_k"),
    ],
)
def test_bad_files_are_input_errors(
    store: Store, tmp_path: Path, name: str, content: str, message: str
) -> None:
    """Each message names the file or the field."""
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        resolve_candidates(store.experiments, TENANT, BASE, files=[tmp_path / name])


def test_missing_things_are_reported(store: Store, tmp_path: Path) -> None:
    """An unreadable file, an unknown configuration, a bad version, an unknown experiment."""
    with pytest.raises(InputError, match="cannot read configuration"):
        read_config_file(tmp_path / "absent.json")
    with pytest.raises(ConfigNotFound):
        resolve_candidates(store.experiments, TENANT, BASE, config_names=["nope"])
    with pytest.raises(InputError, match="must be a number"):
        resolve_candidates(store.experiments, TENANT, BASE, config_names=["mmr@latest"])
    with pytest.raises(ExperimentNotFound):
        resolve_candidates(store.experiments, TENANT, BASE, experiment="nope")
