"""The ``ExperimentStore`` on the server store's database (tables from ``m004_experiments``).

Writers of one configuration name take a transaction-scoped advisory lock on it, so two never
compute the same next version. An experiment's state changes by one ``UPDATE ... WHERE state =
ANY(...) RETURNING``: under ``READ COMMITTED`` a racing update waits for the first and re-checks
the row, and the partial unique index ``experiments_active`` makes a second start of the same
collection wait for the first and fail. Times come from the database's clock (``now()``) and
leave as ISO 8601 UTC strings with milliseconds, as the embedded store writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors

from ragserve.errors import InvalidQuery
from ragserve.store import experiment_rows as rows
from ragserve.store.experiments import (
    ConfigRecord,
    EvalRunRecord,
    ExperimentRecord,
    ExperimentState,
    Feedback,
    FeedbackKind,
    OutcomeWithFeedback,
    QueryOutcome,
)
from ragserve.store.postgres_connections import PostgresPool

CONFIG_LOCK = 0x72_61_67_03
"""The first key of the advisory locks serialising writers of one configuration name (the
second is a hash of tenant and name); two-key locks never collide with the one-key ones."""
# The other running or paused experiment of an experiment's collection: what a refused start
# or resume names.
_ACTIVE_OTHER = (
    "SELECT a.collection, a.name, a.state FROM experiments e JOIN experiments a "
    "ON a.tenant = e.tenant AND a.collection = e.collection AND a.id <> e.id "
    "WHERE e.tenant = %s AND e.id = %s AND a.state IN ('running', 'paused')"
)
_OUTCOME_VALUES = "%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, now()"
_EVAL_RUN_VALUES = (
    "%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s, %s, %s, now()"
)


class PostgresExperimentStore:
    """Configurations, experiments, outcomes, feedback and evaluation runs in the store's
    database, sharing its connection pool."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    # -- pipeline configurations -------------------------------------------------------------

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
        body = rows.dumps(config, "a pipeline configuration")
        with self._pool.transaction(write=True) as conn, _refused("a pipeline configuration"):
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s::integer, %s::integer)",
                (CONFIG_LOCK, _name_key(tenant, name)),
            )
            latest = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs "
                "WHERE tenant = %s AND name = %s ORDER BY version DESC LIMIT 1",
                (tenant, name),
            ).fetchone()
            version = rows.next_version(latest, config_hash)
            if isinstance(version, ConfigRecord):
                return version
            row = conn.execute(
                f"INSERT INTO pipeline_configs ({rows.CONFIG_COLUMNS}) "
                "VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, now()) "
                f"RETURNING {rows.CONFIG_COLUMNS}",
                (tenant, name, version, body, config_hash, index_hash, description),
            ).fetchone()
        assert row is not None  # INSERT ... RETURNING yields its row
        return rows.config_from_row(row)

    def get_config(self, tenant: str, name: str, version: int | None = None) -> ConfigRecord:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs "
                "WHERE tenant = %s AND name = %s AND (%s::integer IS NULL OR version = %s) "
                "ORDER BY version DESC LIMIT 1",
                (tenant, name, version, version),
            ).fetchone()
        if row is None:
            raise rows.config_not_found(name, version)
        return rows.config_from_row(row)

    def list_configs(self, tenant: str) -> list[ConfigRecord]:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs c WHERE tenant = %s "
                "AND version = (SELECT max(version) FROM pipeline_configs "
                'WHERE tenant = c.tenant AND name = c.name) ORDER BY name COLLATE "C"',
                (tenant,),
            ).fetchall()
        return [rows.config_from_row(row) for row in listed]

    def config_versions(self, tenant: str, name: str) -> list[ConfigRecord]:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs "
                "WHERE tenant = %s AND name = %s ORDER BY version",
                (tenant, name),
            ).fetchall()
        if not listed:
            raise rows.config_not_found(name)
        return [rows.config_from_row(row) for row in listed]

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        values = rows.experiment_values(record)
        with self._pool.transaction(write=True) as conn, _refused("an experiment"):
            try:
                row = conn.execute(
                    f"INSERT INTO experiments ({rows.EXPERIMENT_COLUMNS}) VALUES (%s, %s, %s, %s, "
                    "%s::jsonb, %s, 'draft', NULL, %s, now(), now(), NULL, NULL) "
                    f"RETURNING {rows.EXPERIMENT_COLUMNS}",
                    values,
                ).fetchone()
            except errors.UniqueViolation as exc:
                raise rows.experiment_taken(record) from exc
        assert row is not None  # INSERT ... RETURNING yields its row
        return rows.experiment_from_row(row)

    def get_experiment(self, tenant: str, id_or_name: str) -> ExperimentRecord:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.EXPERIMENT_COLUMNS} FROM experiments "
                "WHERE tenant = %s AND (id = %s OR name = %s) ORDER BY id = %s DESC LIMIT 1",
                (tenant, id_or_name, id_or_name, id_or_name),
            ).fetchone()
        if row is None:
            raise rows.experiment_not_found(id_or_name)
        return rows.experiment_from_row(row)

    def list_experiments(
        self, tenant: str, *, collection: str | None = None
    ) -> list[ExperimentRecord]:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.EXPERIMENT_COLUMNS} FROM experiments WHERE tenant = %s "
                "AND (%s::text IS NULL OR collection = %s) ORDER BY created_at DESC, seq DESC",
                (tenant, collection, collection),
            ).fetchall()
        return [rows.experiment_from_row(row) for row in listed]

    def transition(
        self,
        tenant: str,
        experiment_id: str,
        allowed_from: Sequence[ExperimentState],
        to: ExperimentState,
        *,
        winner: str | None = None,
    ) -> ExperimentRecord:
        rows.check_transition(allowed_from, to)
        with self._pool.transaction(write=True) as conn, _refused("a winner"):
            try:
                with conn.transaction():  # a savepoint: after a refusal, the lookup below runs
                    row = conn.execute(
                        "UPDATE experiments SET state = %s, winner = coalesce(%s, winner), "
                        "updated_at = now(), started_at = CASE WHEN %s = 'running' "
                        "THEN coalesce(started_at, now()) ELSE started_at END, "
                        "stopped_at = CASE WHEN %s IN ('stopped', 'promoted') "
                        "THEN coalesce(stopped_at, now()) ELSE stopped_at END "
                        "WHERE tenant = %s AND id = %s AND state = ANY(%s) "
                        f"RETURNING {rows.EXPERIMENT_COLUMNS}",
                        (to, winner, to, to, tenant, experiment_id, list(allowed_from)),
                    ).fetchone()
            except errors.UniqueViolation as exc:  # experiments_active
                active = conn.execute(_ACTIVE_OTHER, (tenant, experiment_id)).fetchone()
                raise rows.active_conflict(active) from exc
            found = None
            if row is None:
                found = conn.execute(
                    "SELECT state FROM experiments WHERE tenant = %s AND id = %s",
                    (tenant, experiment_id),
                ).fetchone()
        if row is None:
            raise rows.transition_refused(experiment_id, found, allowed_from, to)
        return rows.experiment_from_row(row)

    def active_experiment(self, tenant: str, collection: str) -> ExperimentRecord | None:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.EXPERIMENT_COLUMNS} FROM experiments "
                "WHERE tenant = %s AND collection = %s AND state = 'running'",
                (tenant, collection),
            ).fetchone()
        return None if row is None else rows.experiment_from_row(row)

    # -- query outcomes and feedback ---------------------------------------------------------

    def record_outcome(self, outcome: QueryOutcome) -> None:
        values = rows.outcome_values(outcome)
        with self._pool.transaction(write=True) as conn, _refused("a query outcome"):
            conn.execute(
                f"INSERT INTO query_outcomes ({rows.OUTCOME_COLUMNS}) VALUES ({_OUTCOME_VALUES}) "
                "ON CONFLICT (id) DO NOTHING",
                values,
            )

    def get_outcome(self, tenant: str, answer_id: str) -> QueryOutcome:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.OUTCOME_COLUMNS} FROM query_outcomes WHERE tenant = %s AND id = %s",
                (tenant, answer_id),
            ).fetchone()
        if row is None:
            raise rows.answer_not_found(answer_id)
        return rows.outcome_from_row(row)

    def put_feedback(
        self,
        tenant: str,
        answer_id: str,
        kind: FeedbackKind,
        value: int,
        comment: str | None = None,
    ) -> Feedback:
        rows.check_feedback(kind, value)
        with self._pool.transaction(write=True) as conn, _refused("a feedback comment"):
            # Inserted only when the tenant has the answer: another tenant's does not exist.
            row = conn.execute(
                f"INSERT INTO feedback ({rows.FEEDBACK_COLUMNS}) "
                "SELECT id, tenant, %s::text, %s::integer, %s::text, now() "
                "FROM query_outcomes WHERE tenant = %s AND id = %s "
                "ON CONFLICT (answer_id) DO UPDATE SET kind = excluded.kind, "
                "value = excluded.value, comment = excluded.comment, "
                f"created_at = excluded.created_at RETURNING {rows.FEEDBACK_COLUMNS}",
                (kind, value, comment, tenant, answer_id),
            ).fetchone()
        if row is None:
            raise rows.answer_not_found(answer_id)
        return rows.feedback_from_row(row)

    def experiment_outcomes(
        self, tenant: str, experiment_id: str, *, limit: int = 1_000_000
    ) -> list[OutcomeWithFeedback]:
        rows.check_limit(limit)
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.OUTCOME_AND_FEEDBACK_COLUMNS} FROM query_outcomes o "
                "LEFT JOIN feedback f ON f.answer_id = o.id AND f.tenant = o.tenant "
                "WHERE o.tenant = %s AND o.experiment_id = %s "
                "ORDER BY o.created_at, o.seq LIMIT %s",
                (tenant, experiment_id, limit),
            ).fetchall()
        return [rows.outcome_with_feedback(row) for row in listed]

    def recent_outcomes(
        self, tenant: str, *, collection: str | None = None, limit: int = 1000
    ) -> list[QueryOutcome]:
        rows.check_limit(limit)
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.OUTCOME_COLUMNS} FROM query_outcomes WHERE tenant = %s "
                "AND (%s::text IS NULL OR collection = %s) "
                "ORDER BY created_at DESC, seq DESC LIMIT %s",
                (tenant, collection, collection, limit),
            ).fetchall()
        return [rows.outcome_from_row(row) for row in listed]

    # -- evaluation runs ---------------------------------------------------------------------

    def put_eval_run(self, run: EvalRunRecord) -> EvalRunRecord:
        values = rows.eval_run_values(run)
        with self._pool.transaction(write=True) as conn, _refused("an evaluation run"):
            try:
                row = conn.execute(
                    f"INSERT INTO eval_runs ({rows.EVAL_RUN_COLUMNS}) VALUES ({_EVAL_RUN_VALUES}) "
                    f"RETURNING {rows.EVAL_RUN_COLUMNS}",
                    values,
                ).fetchone()
            except errors.UniqueViolation as exc:
                raise rows.eval_run_taken(run.id) from exc
        assert row is not None  # INSERT ... RETURNING yields its row
        return rows.eval_run_from_row(row)

    def get_eval_run(self, tenant: str, run_id: str) -> EvalRunRecord:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.EVAL_RUN_COLUMNS} FROM eval_runs WHERE tenant = %s AND id = %s",
                (tenant, run_id),
            ).fetchall()
            if not listed and rows.is_prefix(run_id):  # substr, not LIKE: ids may hold % and _
                listed = conn.execute(
                    f"SELECT {rows.EVAL_RUN_COLUMNS} FROM eval_runs WHERE tenant = %s "
                    'AND substr(id, 1, %s::integer) = %s ORDER BY id COLLATE "C" LIMIT 2',
                    (tenant, len(run_id), run_id),
                ).fetchall()
        return rows.only_run(run_id, listed)

    def list_eval_runs(
        self,
        tenant: str,
        *,
        dataset_fingerprint: str | None = None,
        config_hash: str | None = None,
        limit: int = 100,
    ) -> list[EvalRunRecord]:
        rows.check_limit(limit)
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.LISTED_EVAL_RUN_COLUMNS} FROM eval_runs WHERE tenant = %s "
                "AND (%s::text IS NULL OR dataset_fingerprint = %s) "
                "AND (%s::text IS NULL OR config_hash = %s) "
                "ORDER BY created_at DESC, seq DESC LIMIT %s",
                (tenant, dataset_fingerprint, dataset_fingerprint, config_hash, config_hash,
                 limit),
            ).fetchall()  # fmt: skip
        return [rows.eval_run_from_row(row) for row in listed]


def _name_key(tenant: str, name: str) -> int:
    """A stable signed 32-bit key for (tenant, name): the same in every process (never
    Python's salted ``hash()``); a collision only makes two names wait for each other."""
    digest = hashlib.sha256(f"{tenant}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


@contextmanager
def _refused(what: str) -> Iterator[None]:
    """Values JSON and Python allow but PostgreSQL refuses (``\\u0000``) are the caller's error."""
    try:
        yield
    except psycopg.DataError as exc:
        raise InvalidQuery(f"{what} cannot be stored: {exc}") from exc
