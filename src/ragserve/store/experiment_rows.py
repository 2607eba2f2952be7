"""The experiment store's records as rows and back, its checks and its errors, for every store
backend: the dialect modules hold only SQL.

Rows come back as each driver returns them: JSON as text (SQLite) or already decoded (JSONB),
times as ISO strings (SQLite) or ``datetime`` (PostgreSQL), flags as 0/1 or booleans.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, cast, get_args

from ragserve.errors import (
    AnswerNotFound,
    ConfigNotFound,
    Conflict,
    EvalRunNotFound,
    ExperimentNotFound,
    InvalidQuery,
)
from ragserve.store.experiments import (
    EXPERIMENT_STATES,
    ConfigRecord,
    EvalRunRecord,
    ExperimentRecord,
    ExperimentState,
    Feedback,
    FeedbackKind,
    OutcomeWithFeedback,
    QueryOutcome,
    SubjectKind,
    Variant,
)

CONFIG_COLUMNS = "tenant, name, version, config, config_hash, index_hash, description, created_at"
EXPERIMENT_COLUMNS = (
    "id, tenant, name, collection, variants, subject, state, winner, description, "
    "created_at, updated_at, started_at, stopped_at"
)
OUTCOME_COLUMNS = (
    "id, tenant, collection, config_hash, experiment_id, variant, subject_hash, stages_ms, "
    "prompt_tokens, completion_tokens, cached, sources_found, abstained, created_at"
)
FEEDBACK_COLUMNS = "answer_id, tenant, kind, value, comment, created_at"
EVAL_RUN_COLUMNS = (
    "id, tenant, kind, dataset, dataset_fingerprint, config_hash, config, metrics, per_query, "
    "timing, label, config_name, experiment_id, variant, created_at"
)
LISTED_EVAL_RUN_COLUMNS = EVAL_RUN_COLUMNS.replace("per_query", "'{}' AS per_query")
"""Listings leave ``per_query`` out: it holds every query's scores and can be large."""
OUTCOME_AND_FEEDBACK_COLUMNS = ", ".join(
    [*(f"o.{c}" for c in OUTCOME_COLUMNS.split(", ")),
     *(f"f.{c}" for c in FEEDBACK_COLUMNS.split(", "))]
)  # fmt: skip
"""An outcome (alias ``o``) and its feedback (alias ``f``, all NULL when there is none)."""

MIN_PREFIX = 6
"""The shortest evaluation run id prefix ``get_eval_run`` resolves."""
_FEEDBACK_RANGES = {"thumbs": (0, 1), "score": (1, 5)}
_OUTCOME_WIDTH = len(OUTCOME_COLUMNS.split(", "))


# -- checks ----------------------------------------------------------------------------------


def check_limit(limit: int) -> None:
    if limit < 0:
        raise InvalidQuery("limit must not be negative")


def check_transition(allowed_from: Sequence[ExperimentState], to: ExperimentState) -> None:
    """A programming error, not the caller's input: unknown states or nothing to move from."""
    unknown = [s for s in (*allowed_from, to) if s not in EXPERIMENT_STATES]
    if unknown or not allowed_from:
        raise ValueError(
            f"a transition goes from known states to one ({', '.join(EXPERIMENT_STATES)}); "
            f"got {list(allowed_from)} -> {to!r}"
        )


def check_feedback(kind: FeedbackKind, value: int) -> None:
    """Thumbs are 0 (down) or 1 (up), scores 1 to 5; anything else is ``InvalidQuery``."""
    if kind not in _FEEDBACK_RANGES:
        raise InvalidQuery(f"feedback kind must be thumbs or score, not {kind!r}")
    low, high = _FEEDBACK_RANGES[kind]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQuery(f"{kind} feedback takes an integer from {low} to {high}, not {value!r}")


def is_prefix(run_id: str) -> bool:
    """Whether ``run_id`` may also be looked up as a prefix (long enough to be meant as one)."""
    return len(run_id) >= MIN_PREFIX


def dumps(value: object, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidQuery(f"{what} must be JSON (finite numbers only): {exc}") from exc


# -- records to row values (in the order of the column lists, without created_at) ------------


def experiment_values(record: ExperimentRecord) -> tuple[Any, ...]:
    """``id, tenant, name, collection, variants, subject, description``."""
    if record.subject not in get_args(SubjectKind):
        raise InvalidQuery(f"an experiment assigns by user or key, not {record.subject!r}")
    variants = dumps([asdict(v) for v in record.variants], "experiment variants")
    return (record.id, record.tenant, record.name, record.collection, variants, record.subject,
            record.description)  # fmt: skip


def outcome_values(outcome: QueryOutcome) -> tuple[Any, ...]:
    """Every column of ``OUTCOME_COLUMNS`` but ``created_at``."""
    return (outcome.id, outcome.tenant, outcome.collection, outcome.config_hash,
            outcome.experiment_id, outcome.variant, outcome.subject_hash,
            dumps(outcome.stages_ms, "stage timings"), int(outcome.prompt_tokens),
            int(outcome.completion_tokens), bool(outcome.cached), bool(outcome.sources_found),
            bool(outcome.abstained))  # fmt: skip


def eval_run_values(run: EvalRunRecord) -> tuple[Any, ...]:
    """Every column of ``EVAL_RUN_COLUMNS`` but ``created_at``."""
    return (run.id, run.tenant, run.kind, run.dataset, run.dataset_fingerprint, run.config_hash,
            dumps(run.config, "an evaluation's configuration"),
            dumps(run.metrics, "evaluation metrics"), dumps(run.per_query, "per-query scores"),
            dumps(run.timing, "evaluation timing"), run.label, run.config_name,
            run.experiment_id, run.variant)  # fmt: skip


# -- rows to records -------------------------------------------------------------------------


def config_from_row(row: Sequence[Any]) -> ConfigRecord:
    (tenant, name, version, config, config_hash, index_hash, description, created_at) = row
    return ConfigRecord(tenant, name, int(version), _loads(config), config_hash, index_hash,
                        description, _iso(created_at) or "")  # fmt: skip


def next_version(latest: Sequence[Any] | None, config_hash: str) -> ConfigRecord | int:
    """``put_config``'s decision on the latest row: that record when its hash is the same
    (nothing to write), else the version to write."""
    if latest is None:
        return 1
    record = config_from_row(latest)
    return record if record.config_hash == config_hash else record.version + 1


def experiment_from_row(row: Sequence[Any]) -> ExperimentRecord:
    (experiment_id, tenant, name, collection, variants, subject, state, winner, description,
     created_at, updated_at, started_at, stopped_at) = row  # fmt: skip
    return ExperimentRecord(
        id=experiment_id,
        tenant=tenant,
        name=name,
        collection=collection,
        variants=tuple(Variant(**v) for v in _loads(variants)),
        subject=cast(SubjectKind, subject),  # the CHECK constraints admit only these values
        state=cast(ExperimentState, state),
        winner=winner,
        description=description,
        created_at=_iso(created_at) or "",
        updated_at=_iso(updated_at) or "",
        started_at=_iso(started_at),
        stopped_at=_iso(stopped_at),
    )


def outcome_from_row(row: Sequence[Any]) -> QueryOutcome:
    (answer_id, tenant, collection, config_hash, experiment_id, variant, subject_hash,
     stages_ms, prompt_tokens, completion_tokens, cached, sources_found, abstained,
     created_at) = row  # fmt: skip
    return QueryOutcome(answer_id, tenant, collection, config_hash, experiment_id, variant,
                        subject_hash, _loads(stages_ms), int(prompt_tokens),
                        int(completion_tokens), bool(cached), bool(sources_found),
                        bool(abstained), _iso(created_at) or "")  # fmt: skip


def feedback_from_row(row: Sequence[Any]) -> Feedback:
    (answer_id, tenant, kind, value, comment, created_at) = row
    return Feedback(answer_id, tenant, cast(FeedbackKind, kind), int(value), comment,
                    _iso(created_at) or "")  # fmt: skip


def outcome_with_feedback(row: Sequence[Any]) -> OutcomeWithFeedback:
    """A row of ``OUTCOME_AND_FEEDBACK_COLUMNS``."""
    outcome, feedback = row[:_OUTCOME_WIDTH], row[_OUTCOME_WIDTH:]
    return OutcomeWithFeedback(
        outcome_from_row(outcome), None if feedback[0] is None else feedback_from_row(feedback)
    )


def eval_run_from_row(row: Sequence[Any]) -> EvalRunRecord:
    (run_id, tenant, kind, dataset, dataset_fingerprint, config_hash, config, metrics,
     per_query, timing, label, config_name, experiment_id, variant, created_at) = row  # fmt: skip
    return EvalRunRecord(run_id, tenant, kind, dataset, dataset_fingerprint, config_hash,
                         _loads(config), _loads(metrics), _loads(per_query), _loads(timing),
                         label, config_name, experiment_id, variant,
                         _iso(created_at) or "")  # fmt: skip


# -- errors ----------------------------------------------------------------------------------


def config_not_found(name: str, version: int | None = None) -> ConfigNotFound:
    which = f"{name!r}" if version is None else f"{name!r} version {version}"
    return ConfigNotFound(f"pipeline configuration {which} not found")


def experiment_not_found(id_or_name: str) -> ExperimentNotFound:
    return ExperimentNotFound(f"experiment {id_or_name!r} not found")


def experiment_taken(record: ExperimentRecord) -> Conflict:
    return Conflict(
        f"an experiment named {record.name!r} or with id {record.id!r} already exists; "
        "choose another name"
    )


def state_conflict(
    experiment_id: str, state: str, allowed_from: Sequence[str], to: str
) -> Conflict:
    return Conflict(
        f"experiment {experiment_id!r} is {state}; it can become {to} only from "
        + " or ".join(allowed_from)
    )


def active_conflict(active: Sequence[Any] | None) -> Conflict:
    """``active``: ``(collection, name, state)`` of the experiment already active, if found."""
    if active is None:  # it ended in the meantime: trying again may succeed
        return Conflict("another experiment of the collection is already running or paused")
    collection, name, state = active
    return Conflict(
        f"collection {collection!r} already has an active experiment ({name!r}, {state}); "
        "stop or promote it first"
    )


def transition_refused(
    experiment_id: str, found: Sequence[Any] | None, allowed_from: Sequence[str], to: str
) -> ExperimentNotFound | Conflict:
    """Why a compare-and-set matched no row: ``found`` is the experiment's ``(state,)``, if any."""
    if found is None:
        return experiment_not_found(experiment_id)
    return state_conflict(experiment_id, found[0], allowed_from, to)


def answer_not_found(answer_id: str) -> AnswerNotFound:
    return AnswerNotFound(f"answer {answer_id!r} not found")


def eval_run_not_found(run_id: str, matches: Sequence[str] = ()) -> EvalRunNotFound:
    """Not found, or (``matches``: several ids) an ambiguous prefix."""
    if len(matches) > 1:
        return EvalRunNotFound(
            f"evaluation run prefix {run_id!r} is ambiguous: it matches more than one run, "
            f"e.g. {' and '.join(matches[:2])}; give more characters"
        )
    return EvalRunNotFound(f"evaluation run {run_id!r} not found")


def only_run(run_id: str, rows: Sequence[Sequence[Any]]) -> EvalRunRecord:
    """The one run ``run_id`` names (its id, else its prefix); raises ``EvalRunNotFound`` for
    none or several."""
    if len(rows) != 1:
        raise eval_run_not_found(run_id, [row[0] for row in rows])
    return eval_run_from_row(rows[0])


def eval_run_taken(run_id: str) -> Conflict:
    return Conflict(f"an evaluation run with id {run_id!r} already exists")


def _loads(value: Any) -> Any:
    """JSON as SQLite returns it (text), or as psycopg does (decoded JSONB)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _iso(moment: str | datetime | None) -> str | None:
    """As the embedded store writes times: UTC, milliseconds, ``+00:00``."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return moment
