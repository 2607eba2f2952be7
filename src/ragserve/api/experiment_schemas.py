"""Request and response bodies of configurations, experiments and feedback."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from ragserve.api.schemas import NAME_PATTERN, Strict
from ragserve.pipeline import CONFIG_NAME_PATTERN
from ragserve.store.experiments import ConfigRecord, EvalRunRecord, ExperimentRecord, Feedback

CONFIG_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}(@[1-9][0-9]{0,8})?$"


class ConfigPut(Strict):
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="sections (chunk, embed, retrieve, rerank, llm) with the fields to set; "
        "the rest comes from `base`, or from the server's configuration",
    )
    base: str | None = Field(default=None, pattern=CONFIG_REF_PATTERN)
    description: str = Field(default="", max_length=2000)


class ConfigOut(BaseModel):
    name: str
    version: int
    ref: str = Field(description="name@version")
    config: dict[str, Any]
    config_hash: str
    index_hash: str = Field(description="changes when chunking or the embedder change")
    description: str
    created_at: str

    @classmethod
    def of(cls, record: ConfigRecord) -> ConfigOut:
        return cls(
            name=record.name,
            version=record.version,
            ref=record.ref,
            config=record.config,
            config_hash=record.config_hash,
            index_hash=record.index_hash,
            description=record.description,
            created_at=record.created_at,
        )


class ConfigList(BaseModel):
    configs: list[ConfigOut]


class CollectionConfigPut(Strict):
    config: str | None = Field(
        pattern=CONFIG_REF_PATTERN,
        description="name or name@version (latest when no version); null: the server's own",
    )


class CollectionConfigOut(BaseModel):
    collection: str
    config: str | None = Field(description="name@version, or null for the server's own")
    config_hash: str
    index_hash: str
    resolved: dict[str, Any]
    reindex_job: str | None = Field(description="a re-index under way, if any")


class ReindexAccepted(BaseModel):
    job_id: str
    status_url: str
    message: str


class VariantIn(Strict):
    name: str = Field(pattern=CONFIG_NAME_PATTERN)
    config: str = Field(pattern=CONFIG_REF_PATTERN, description="name or name@version")
    share: float = Field(gt=0, le=1)


class ExperimentCreate(Strict):
    name: str = Field(pattern=CONFIG_NAME_PATTERN)
    collection: str = Field(pattern=NAME_PATTERN)
    variants: list[VariantIn] = Field(min_length=2, max_length=10)
    subject: Literal["user", "key"] = Field(
        default="user",
        description="assign by X-Ragserve-User (falling back to the API key), or by API key",
    )
    description: str = Field(default="", max_length=2000)


class VariantOut(BaseModel):
    name: str
    config: str
    share: float


class ExperimentOut(BaseModel):
    id: str
    name: str
    collection: str
    state: str
    variants: list[VariantOut]
    subject: str
    winner: str | None
    description: str
    created_at: str
    updated_at: str
    started_at: str | None
    stopped_at: str | None

    @classmethod
    def of(cls, record: ExperimentRecord) -> ExperimentOut:
        return cls(
            id=record.id,
            name=record.name,
            collection=record.collection,
            state=record.state,
            variants=[
                VariantOut(name=v.name, config=f"{v.config_name}@{v.config_version}", share=v.share)
                for v in record.variants
            ],
            subject=record.subject,
            winner=record.winner,
            description=record.description,
            created_at=record.created_at,
            updated_at=record.updated_at,
            started_at=record.started_at,
            stopped_at=record.stopped_at,
        )


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class PromoteIn(Strict):
    variant: str = Field(pattern=CONFIG_NAME_PATTERN)


class PromoteOut(BaseModel):
    experiment: ExperimentOut
    collection_config: str | None = Field(description="the collection's configuration now")
    reindex_job: str | None = Field(
        description="when the winner needs a new index: the job that switches to it"
    )


class FeedbackIn(Strict):
    thumbs: Literal["up", "down"] | None = None
    score: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_kind(self) -> FeedbackIn:
        if (self.thumbs is None) == (self.score is None):
            raise ValueError("give either thumbs (up or down) or score (1-5)")
        return self


class FeedbackOut(BaseModel):
    answer_id: str
    kind: str
    value: int
    comment: str | None
    created_at: str

    @classmethod
    def of(cls, feedback: Feedback) -> FeedbackOut:
        return cls(
            answer_id=feedback.answer_id,
            kind=feedback.kind,
            value=feedback.value,
            comment=feedback.comment,
            created_at=feedback.created_at,
        )


class EvalRunOut(BaseModel):
    id: str
    kind: str
    dataset: str
    dataset_fingerprint: str
    label: str
    config_name: str | None
    config_hash: str
    config: dict[str, Any]
    experiment_id: str | None
    variant: str | None
    metrics: dict[str, float]
    timing: dict[str, float]
    per_query: dict[str, dict[str, float]] | None = Field(
        default=None, description="every query's scores, with per_query=true"
    )
    created_at: str

    @classmethod
    def of(cls, run: EvalRunRecord, *, per_query: bool = False) -> EvalRunOut:
        return cls(
            id=run.id,
            kind=run.kind,
            dataset=run.dataset,
            dataset_fingerprint=run.dataset_fingerprint,
            label=run.label,
            config_name=run.config_name,
            config_hash=run.config_hash,
            config=run.config,
            experiment_id=run.experiment_id,
            variant=run.variant,
            metrics=run.metrics,
            timing=run.timing,
            per_query=run.per_query if per_query else None,
            created_at=run.created_at,
        )


class EvalRunList(BaseModel):
    runs: list[EvalRunOut]
