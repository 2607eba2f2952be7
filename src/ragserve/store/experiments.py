"""The experiments seam: pipeline configurations, experiments, query outcomes, feedback and
evaluation runs, in the same database as the documents.

Every method names the tenant; another tenant's rows do not exist for the caller
(``NotFoundError``). Timestamps are ISO 8601 UTC strings set by the store. An experiment's
state changes by compare-and-set, so replicas may race and exactly one wins::

    draft ──start──▶ running ◀──resume── paused
                       │  └────pause────▶  │
                       ▼                   ▼
                    stopped ◀──────stop────┘
    running | paused | stopped ──promote──▶ promoted

At most one experiment per (tenant, collection) is ``running`` or ``paused`` at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ExperimentState = Literal["draft", "running", "paused", "stopped", "promoted"]
EXPERIMENT_STATES: tuple[ExperimentState, ...] = (
    "draft",
    "running",
    "paused",
    "stopped",
    "promoted",
)
SubjectKind = Literal["user", "key"]
FeedbackKind = Literal["thumbs", "score"]


@dataclass(frozen=True)
class ConfigRecord:
    """One version of a named pipeline configuration (``config``: a resolved
    ``PipelineConfig`` dumped to JSON)."""

    tenant: str
    name: str
    version: int
    config: dict[str, Any]
    config_hash: str
    index_hash: str
    description: str = ""
    created_at: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Variant:
    """An arm of an experiment: a pinned configuration version and its traffic share."""

    name: str
    config_name: str
    config_version: int
    share: float


@dataclass(frozen=True)
class ExperimentRecord:
    id: str
    tenant: str
    name: str
    collection: str
    variants: tuple[Variant, ...]
    subject: SubjectKind = "user"
    """What assignment hashes: the caller's user id (``X-Ragserve-User``, falling back to the
    API key) or always the API key."""
    state: ExperimentState = "draft"
    winner: str | None = None
    description: str = ""
    created_at: str = ""
    updated_at: str = ""
    started_at: str | None = None
    stopped_at: str | None = None

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)


@dataclass(frozen=True)
class QueryOutcome:
    """What one answered question cost and produced; ``id`` is the answer id clients see."""

    id: str
    tenant: str
    collection: str
    config_hash: str
    experiment_id: str | None = None
    variant: str | None = None
    subject_hash: str | None = None
    """First 16 hex digits of SHA-256 of the subject: sticky, never the raw user or key."""
    stages_ms: dict[str, float] = field(default_factory=dict)
    """embed, retrieve, rerank, generate, total (and cache for a cached answer)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    sources_found: bool = False
    abstained: bool = False
    created_at: str = ""


@dataclass(frozen=True)
class Feedback:
    """A client's judgement of one answer: thumbs (0 down, 1 up) or a 1-5 score. Posting
    again for the same answer replaces it."""

    answer_id: str
    tenant: str
    kind: FeedbackKind
    value: int
    comment: str | None = None
    created_at: str = ""


@dataclass(frozen=True)
class OutcomeWithFeedback:
    outcome: QueryOutcome
    feedback: Feedback | None


@dataclass(frozen=True)
class EvalRunRecord:
    """A stored evaluation: what ran (configuration and its hash, dataset and its
    fingerprint), the aggregate metrics, every query's scores (for paired tests) and timing."""

    id: str
    tenant: str
    kind: Literal["beir", "squad"]
    dataset: str
    dataset_fingerprint: str
    config_hash: str
    config: dict[str, Any]
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    timing: dict[str, float]
    label: str = ""
    config_name: str | None = None
    experiment_id: str | None = None
    variant: str | None = None
    created_at: str = ""


class ExperimentStore(Protocol):
    # ---- pipeline configurations ---------------------------------------------------------
    def put_config(
        self,
        tenant: str,
        name: str,
        config: dict[str, Any],
        *,
        config_hash: str,
        index_hash: str,
        description: str = "",
    ) -> ConfigRecord:
        """Store a new version (1 + the latest) of ``name``; when the latest version has the
        same ``config_hash`` it is returned and nothing is written."""
        ...

    def get_config(self, tenant: str, name: str, version: int | None = None) -> ConfigRecord:
        """That version, or the latest; raises ``ConfigNotFound``."""
        ...

    def list_configs(self, tenant: str) -> list[ConfigRecord]:
        """The latest version of each of the tenant's configurations, by name."""
        ...

    def config_versions(self, tenant: str, name: str) -> list[ConfigRecord]:
        """Every version of ``name``, oldest first; raises ``ConfigNotFound`` when none."""
        ...

    # ---- experiments ---------------------------------------------------------------------
    def create_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        """Insert as ``draft``; raises ``Conflict`` when the tenant has an experiment of that
        name or that id."""
        ...

    def get_experiment(self, tenant: str, id_or_name: str) -> ExperimentRecord:
        """By id, else by name; raises ``ExperimentNotFound``."""
        ...

    def list_experiments(
        self, tenant: str, *, collection: str | None = None
    ) -> list[ExperimentRecord]:
        """Newest first."""
        ...

    def transition(
        self,
        tenant: str,
        experiment_id: str,
        allowed_from: Sequence[ExperimentState],
        to: ExperimentState,
        *,
        winner: str | None = None,
    ) -> ExperimentRecord:
        """Compare-and-set of the state; sets ``started_at`` on the first start,
        ``stopped_at`` on stop or promote, ``winner`` when given. Raises
        ``ExperimentNotFound``, or ``Conflict`` when the state is not in ``allowed_from`` or
        another experiment of the collection is already running or paused."""
        ...

    def active_experiment(self, tenant: str, collection: str) -> ExperimentRecord | None:
        """The collection's ``running`` experiment, if any (a paused one serves nobody)."""
        ...

    # ---- query outcomes and feedback -------------------------------------------------------
    def record_outcome(self, outcome: QueryOutcome) -> None:
        """Insert; an id seen before is ignored (at-least-once writers)."""
        ...

    def get_outcome(self, tenant: str, answer_id: str) -> QueryOutcome:
        """Raises ``AnswerNotFound``."""
        ...

    def put_feedback(
        self,
        tenant: str,
        answer_id: str,
        kind: FeedbackKind,
        value: int,
        comment: str | None = None,
    ) -> Feedback:
        """Insert or replace the answer's feedback; raises ``AnswerNotFound`` when the tenant
        has no such answer."""
        ...

    def experiment_outcomes(
        self, tenant: str, experiment_id: str, *, limit: int = 1_000_000
    ) -> list[OutcomeWithFeedback]:
        """Every outcome recorded under the experiment with its feedback, oldest first."""
        ...

    def recent_outcomes(
        self, tenant: str, *, collection: str | None = None, limit: int = 1000
    ) -> list[QueryOutcome]:
        """The tenant's latest outcomes, newest first."""
        ...

    # ---- evaluation runs -------------------------------------------------------------------
    def put_eval_run(self, run: EvalRunRecord) -> EvalRunRecord:
        """Insert; raises ``Conflict`` when the id is taken."""
        ...

    def get_eval_run(self, tenant: str, run_id: str) -> EvalRunRecord:
        """By id, or by a unique prefix of at least 6 characters; raises ``EvalRunNotFound``
        (also for an ambiguous prefix, naming it)."""
        ...

    def list_eval_runs(
        self,
        tenant: str,
        *,
        dataset_fingerprint: str | None = None,
        config_hash: str | None = None,
        limit: int = 100,
    ) -> list[EvalRunRecord]:
        """Newest first; ``per_query`` is left empty in listings (it can be large)."""
        ...
