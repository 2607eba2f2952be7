"""Which pipeline configurations an evaluation runs: partial configuration files (JSON or
TOML), stored configuration versions (``NAME`` or ``NAME@VERSION``) and every variant of an
experiment, each laid over a base configuration (the server settings')."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ragserve.errors import InputError
from ragserve.pipeline import PipelineConfig
from ragserve.store.experiments import ExperimentStore

__all__ = ["Candidate", "read_config_file", "resolve_candidates"]


@dataclass(frozen=True)
class Candidate:
    """A configuration to evaluate, its run label, and where it came from."""

    label: str
    config: PipelineConfig
    config_name: str | None = None
    experiment_id: str | None = None
    variant: str | None = None


def resolve_candidates(
    store: ExperimentStore,
    tenant: str,
    base: PipelineConfig,
    *,
    files: Sequence[Path] = (),
    config_names: Sequence[str] = (),
    experiment: str | None = None,
    mode: str | None = None,
    label: str = "",
) -> list[Candidate]:
    """Files first (labelled by file stem), then stored configurations (by ``name@version``),
    then the experiment's variants (``experiment:variant``); ``base`` alone when none is
    named. ``mode`` overrides every one's retrieval mode; ``label`` names a single candidate
    or prefixes several. Raises ``InputError`` or ``NotFoundError`` naming what is wrong."""
    found = [Candidate(path.stem, PipelineConfig.resolve(read_config_file(path), base))
             for path in files]  # fmt: skip
    for ref in config_names:
        name, _, version = ref.partition("@")
        record = store.get_config(tenant, name, _version(version, ref))
        found.append(Candidate(record.ref, PipelineConfig.resolve(record.config, base), record.ref))
    if experiment is not None:
        found += _variants(store, tenant, experiment, base)
    found = found or [Candidate("", base)]
    if mode is not None:
        override = {"retrieve": {"mode": mode}}
        found = [replace(c, config=PipelineConfig.resolve(override, c.config)) for c in found]
    if label:
        found = [
            replace(c, label=label if len(found) == 1 else f"{label}:{c.label}") for c in found
        ]
    return found


def read_config_file(path: Path) -> dict[str, Any]:
    """A partial configuration: TOML when the name ends in ``.toml``, else JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read configuration {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"configuration {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"configuration {path} must hold an object of sections")
    return data


def _variants(
    store: ExperimentStore, tenant: str, experiment: str, base: PipelineConfig
) -> list[Candidate]:
    record = store.get_experiment(tenant, experiment)
    found = []
    for variant in record.variants:
        config = store.get_config(tenant, variant.config_name, variant.config_version)
        found.append(
            Candidate(
                label=f"{record.name}:{variant.name}",
                config=PipelineConfig.resolve(config.config, base),
                config_name=config.ref,
                experiment_id=record.id,
                variant=variant.name,
            )
        )
    return found


def _version(text: str, ref: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise InputError(f"configuration {ref!r}: the version after @ must be a number")
    return int(text)
