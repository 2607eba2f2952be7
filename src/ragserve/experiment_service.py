"""Pipeline configurations, collections' choice of one, experiments and feedback:
``service.experiments``.

Configurations are stored resolved (every field set) and versioned: a variant pins a version,
so editing a configuration never changes a running experiment. Experiment transitions bump the
collection's version, which every replica reads with each query (``experiments/routing.py``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragserve.embed import embedders
from ragserve.errors import InputError
from ragserve.experiments.analysis import ExperimentAnalysis, analyze
from ragserve.experiments.assignment import Split
from ragserve.experiments.routing import ExperimentRouter
from ragserve.generate import generators
from ragserve.pipeline import CONFIG_NAME_PATTERN, PipelineConfig
from ragserve.rerank import rerankers
from ragserve.store.experiments import (
    ConfigRecord,
    ExperimentRecord,
    ExperimentState,
    Feedback,
    FeedbackKind,
    SubjectKind,
    Variant,
)
from ragserve.types import CollectionInfo, JobRecord

if TYPE_CHECKING:
    from ragserve.service import RagService

_NAME = re.compile(CONFIG_NAME_PATTERN)
MAX_VARIANTS = 10

TRANSITIONS: dict[str, tuple[tuple[ExperimentState, ...], ExperimentState]] = {
    "start": (("draft",), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "stop": (("running", "paused"), "stopped"),
}


@dataclass(frozen=True)
class VariantSpec:
    """A variant as asked for: ``config_version`` None pins the latest version."""

    name: str
    config_name: str
    share: float
    config_version: int | None = None


@dataclass(frozen=True)
class ConfigChange:
    """What changing a collection's configuration did: bound it at once, or started the
    re-index (``job``) that binds it when it swaps the new index in."""

    collection: CollectionInfo
    job: JobRecord | None


class ExperimentService:
    def __init__(self, service: RagService) -> None:
        self._service = service
        self.store = service.store.experiments
        self.router = ExperimentRouter(self.store)

    # ---- configurations --------------------------------------------------------------------

    def put_config(
        self,
        name: str,
        partial: dict[str, Any],
        *,
        tenant: str,
        description: str = "",
        base: str | None = None,
    ) -> ConfigRecord:
        """A new version of ``name``: ``partial`` laid over ``base`` (another stored
        configuration, ``name`` or ``name@version``) or the server's own configuration."""
        _valid_name(name, "configuration")
        start = (
            self._resolved(tenant, *parse_ref(base))
            if base
            else PipelineConfig.from_settings(self._service.settings)
        )
        config = PipelineConfig.resolve(partial, start)
        _check_backends(config)
        return self.store.put_config(
            tenant,
            name,
            config.model_dump(mode="json"),
            config_hash=config.config_hash(),
            index_hash=config.index_hash(),
            description=description,
        )

    def get_config(self, name: str, version: int | None = None, *, tenant: str) -> ConfigRecord:
        return self.store.get_config(tenant, name, version)

    def list_configs(self, *, tenant: str) -> list[ConfigRecord]:
        return self.store.list_configs(tenant)

    def config_versions(self, name: str, *, tenant: str) -> list[ConfigRecord]:
        return self.store.config_versions(tenant, name)

    def collection_config(self, collection: str, *, tenant: str) -> dict[str, Any]:
        """The collection's configuration: which one, resolved, its hashes, and a re-index
        under way if any."""
        info = self._service.get_collection(collection, tenant=tenant)
        pipeline = self._service.pipeline_for(tenant, info)
        pending = [
            job
            for state in ("queued", "running")
            for job in self._service.jobs.list_jobs(
                tenant=tenant,
                state=state,
                collection=collection,
            )
            if job.kind == "reindex"
        ]
        return {
            "collection": collection,
            "config": pipeline.ref,
            "config_hash": pipeline.config_hash,
            "index_hash": pipeline.index_hash,
            "resolved": pipeline.config.model_dump(mode="json"),
            "reindex_job": pending[0].id if pending else None,
        }

    def set_collection_config(
        self, collection: str, ref: str | None, *, tenant: str
    ) -> ConfigChange:
        """Make the collection use ``ref`` (``name`` or ``name@version``; None: the server's
        own). The same chunking and embedder: at once. Otherwise a background re-index
        builds the new index while queries use the old one, and switches atomically."""
        info = self._service.get_collection(collection, tenant=tenant)
        if ref is None:
            pinned, target = None, self._service.pipelines.default
        else:
            record = self.store.get_config(tenant, *parse_ref(ref))
            pinned = (record.name, record.version)
            target = self._service.config_pipeline(tenant, *pinned)
        current = self._service.pipeline_for(tenant, info)
        if target.pipeline_hash == current.pipeline_hash or info.document_count == 0:
            bound = self._service.store.set_collection_config(tenant, collection, pinned)
            return ConfigChange(bound, None)
        job = self._service.jobs.submit_reindex(collection, pinned, tenant=tenant)
        return ConfigChange(info, job)

    # ---- experiments -----------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        collection: str,
        variants: Sequence[VariantSpec],
        *,
        tenant: str,
        subject: SubjectKind = "user",
        description: str = "",
    ) -> ExperimentRecord:
        """A draft experiment; each variant pins a configuration version, and all must
        search the collection's current index (same chunking and embedder): comparing
        chunkings or embedders is for ``ragserve eval``, which builds each index."""
        _valid_name(name, "experiment")
        if len(variants) > MAX_VARIANTS:
            raise InputError(f"an experiment has at most {MAX_VARIANTS} variants")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise InputError("variant names must be unique")
        for variant in variants:
            _valid_name(variant.name, "variant")
        Split.of({v.name: v.share for v in variants})
        info = self._service.get_collection(collection, tenant=tenant)
        index = self._service.pipeline_for(tenant, info)
        pinned: list[Variant] = []
        for spec in variants:
            config = self.store.get_config(tenant, spec.config_name, spec.config_version)
            pipeline = self._service.config_pipeline(tenant, config.name, config.version)
            if pipeline.pipeline_hash != index.pipeline_hash:
                raise InputError(
                    f"variant {spec.name!r} ({config.ref}) chunks or embeds differently from "
                    f"collection {collection!r}'s index; variants may change retrieval, "
                    "reranking and generation only (compare indexes with `ragserve eval`)"
                )
            pinned.append(Variant(spec.name, config.name, config.version, spec.share))
        record = ExperimentRecord(
            id=uuid.uuid4().hex,
            tenant=tenant,
            name=name,
            collection=collection,
            variants=tuple(pinned),
            subject=subject,
            description=description,
        )
        return self.store.create_experiment(record)

    def get_experiment(self, id_or_name: str, *, tenant: str) -> ExperimentRecord:
        return self.store.get_experiment(tenant, id_or_name)

    def list_experiments(
        self, *, tenant: str, collection: str | None = None
    ) -> list[ExperimentRecord]:
        return self.store.list_experiments(tenant, collection=collection)

    def transition(self, id_or_name: str, action: str, *, tenant: str) -> ExperimentRecord:
        """``start``, ``pause``, ``resume`` or ``stop``; ``Conflict`` from a wrong state."""
        if action not in TRANSITIONS:
            raise InputError(f"unknown action {action!r}; one of {', '.join(TRANSITIONS)}")
        experiment = self.store.get_experiment(tenant, id_or_name)
        allowed, to = TRANSITIONS[action]
        changed = self.store.transition(tenant, experiment.id, allowed, to)
        self._service.store.touch_collection(tenant, experiment.collection)
        return changed

    def promote(
        self, id_or_name: str, variant: str, *, tenant: str
    ) -> tuple[ExperimentRecord, ConfigChange]:
        """End the experiment with ``variant`` as the winner: its configuration becomes the
        collection's, and the next answers use it."""
        experiment = self.store.get_experiment(tenant, id_or_name)
        try:
            winner = experiment.variant(variant)
        except KeyError:
            known = ", ".join(v.name for v in experiment.variants)
            raise InputError(f"experiment has no variant {variant!r} (variants: {known})") from None
        promoted = self.store.transition(
            tenant, experiment.id, ("running", "paused", "stopped"), "promoted", winner=variant
        )
        ref = f"{winner.config_name}@{winner.config_version}"
        change = self.set_collection_config(experiment.collection, ref, tenant=tenant)
        if change.job is not None:  # bound when the re-index swaps; stop routing meanwhile
            self._service.store.touch_collection(tenant, experiment.collection)
        return promoted, change

    def analysis(self, id_or_name: str, *, tenant: str) -> ExperimentAnalysis:
        experiment = self.store.get_experiment(tenant, id_or_name)
        return analyze(experiment, self.store.experiment_outcomes(tenant, experiment.id))

    # ---- feedback --------------------------------------------------------------------------

    def feedback(
        self,
        answer_id: str,
        kind: FeedbackKind,
        value: int,
        *,
        tenant: str,
        comment: str | None = None,
    ) -> tuple[Feedback, str | None, str | None]:
        """Record feedback on an answer; returns it with the answer's experiment and
        variant (for metrics)."""
        outcome = self.store.get_outcome(tenant, answer_id)
        saved = self.store.put_feedback(tenant, answer_id, kind, value, comment)
        return saved, outcome.experiment_id, outcome.variant

    def _resolved(self, tenant: str, name: str, version: int | None) -> PipelineConfig:
        return PipelineConfig.model_validate(self.store.get_config(tenant, name, version).config)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@version``."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InputError(f"configuration version must be a positive integer, got {version!r}")
    return name, int(version)


def _valid_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise InputError(
            f"{what} names are 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            f"or digit; got {name!r}"
        )


def _check_backends(config: PipelineConfig) -> None:
    for stage, registry, name in (
        ("embed.provider", embedders, config.embed.provider),
        ("llm.provider", generators, config.llm.provider),
        ("rerank.name", rerankers, config.rerank.name),
    ):
        if name not in registry.names():
            raise InputError(f"{stage} {name!r} is unknown; one of {', '.join(registry.names())}")
