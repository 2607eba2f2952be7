"""The ``ExperimentStore`` on the embedded store's SQLite file (tables from ``m004_experiments``).

Every write runs under the write lock (``BEGIN IMMEDIATE``), so a configuration's next version
is read and written by one writer at a time. An experiment's state changes by one ``UPDATE ...
WHERE state IN (...) RETURNING``, and the partial unique index ``experiments_active`` refuses a
second running or paused experiment of a collection. Times are the store's clock, as ISO 8601.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

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
from ragserve.store.schema import utc_now
from ragserve.store.sqlite_connections import ConnectionPool

# The other running or paused experiment of an experiment's collection: what a refused start
# or resume names.
_ACTIVE_OTHER = (
    "SELECT a.collection, a.name, a.state FROM experiments e JOIN experiments a "
    "ON a.tenant = e.tenant AND a.collection = e.collection AND a.id <> e.id "
    "WHERE e.tenant = ? AND e.id = ? AND a.state IN ('running', 'paused')"
)


class SqliteExperimentStore:
    """Configurations, experiments, outcomes, feedback and evaluation runs in the store's
    database, sharing its connection pool."""

    def __init__(self, pool: ConnectionPool) -> None:
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
        with self._pool.transaction(write=True) as conn:
            latest = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs WHERE tenant = ? AND name = ? "
                "ORDER BY version DESC LIMIT 1",
                (tenant, name),
            ).fetchone()
            version = rows.next_version(latest, config_hash)
            if isinstance(version, ConfigRecord):
                return version
            row = conn.execute(
                f"INSERT INTO pipeline_configs ({rows.CONFIG_COLUMNS}) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {rows.CONFIG_COLUMNS}",
                (tenant, name, version, body, config_hash, index_hash, description, utc_now()),
            ).fetchone()
        return rows.config_from_row(row)

    def get_config(self, tenant: str, name: str, version: int | None = None) -> ConfigRecord:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs WHERE tenant = ? AND name = ? "
                "AND (? IS NULL OR version = ?) ORDER BY version DESC LIMIT 1",
                (tenant, name, version, version),
            ).fetchone()
        if row is None:
            raise rows.config_not_found(name, version)
        return rows.config_from_row(row)

    def list_configs(self, tenant: str) -> list[ConfigRecord]:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs c WHERE tenant = ? "
                "AND version = (SELECT max(version) FROM pipeline_configs "
                "WHERE tenant = c.tenant AND name = c.name) ORDER BY name",
                (tenant,),
            ).fetchall()
        return [rows.config_from_row(row) for row in listed]

    def config_versions(self, tenant: str, name: str) -> list[ConfigRecord]:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.CONFIG_COLUMNS} FROM pipeline_configs WHERE tenant = ? AND name = ? "
                "ORDER BY version",
                (tenant, name),
            ).fetchall()
        if not listed:
            raise rows.config_not_found(name)
        return [rows.config_from_row(row) for row in listed]

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        values = rows.experiment_values(record)
        now = utc_now()
        with self._pool.transaction(write=True) as conn:
            try:
                row = conn.execute(
                    f"INSERT INTO experiments ({rows.EXPERIMENT_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, 'draft', NULL, ?, ?, ?, NULL, NULL) "
                    f"RETURNING {rows.EXPERIMENT_COLUMNS}",
                    (*values, now, now),
                ).fetchone()
            except sqlite3.IntegrityError as exc:
                raise rows.experiment_taken(record) from exc
        return rows.experiment_from_row(row)

    def get_experiment(self, tenant: str, id_or_name: str) -> ExperimentRecord:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.EXPERIMENT_COLUMNS} FROM experiments "
                "WHERE tenant = ? AND (id = ? OR name = ?) ORDER BY id = ? DESC LIMIT 1",
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
                f"SELECT {rows.EXPERIMENT_COLUMNS} FROM experiments WHERE tenant = ? "
                "AND (? IS NULL OR collection = ?) ORDER BY created_at DESC, rowid DESC",
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
        now = utc_now()
        marks = ", ".join("?" * len(allowed_from))
        with self._pool.transaction(write=True) as conn:
            try:
                row = conn.execute(
                    "UPDATE experiments SET state = ?, winner = coalesce(?, winner), "
                    "updated_at = ?, started_at = CASE WHEN ? = 'running' "
                    "THEN coalesce(started_at, ?) ELSE started_at END, "
                    "stopped_at = CASE WHEN ? IN ('stopped', 'promoted') "
                    "THEN coalesce(stopped_at, ?) ELSE stopped_at END "
                    f"WHERE tenant = ? AND id = ? AND state IN ({marks}) "
                    f"RETURNING {rows.EXPERIMENT_COLUMNS}",
                    (to, winner, now, to, now, to, now, tenant, experiment_id, *allowed_from),
                ).fetchone()
            except sqlite3.IntegrityError as exc:  # experiments_active: only the update failed
                active = conn.execute(_ACTIVE_OTHER, (tenant, experiment_id)).fetchone()
                raise rows.active_conflict(active) from exc
            found = None
            if row is None:
                found = conn.execute(
                    "SELECT state FROM experiments WHERE tenant = ? AND id = ?",
                    (tenant, experiment_id),
                ).fetchone()
        if row is None:
            raise rows.transition_refused(experiment_id, found, allowed_from, to)
        return rows.experiment_from_row(row)

    def active_experiment(self, tenant: str, collection: str) -> ExperimentRecord | None:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.EXPERIMENT_COLUMNS} FROM experiments "
                "WHERE tenant = ? AND collection = ? AND state = 'running'",
                (tenant, collection),
            ).fetchone()
        return None if row is None else rows.experiment_from_row(row)

    # -- query outcomes and feedback ---------------------------------------------------------

    def record_outcome(self, outcome: QueryOutcome) -> None:
        values = rows.outcome_values(outcome)
        with self._pool.transaction(write=True) as conn:
            conn.execute(
                f"INSERT INTO query_outcomes ({rows.OUTCOME_COLUMNS}) "
                f"VALUES ({', '.join('?' * (len(values) + 1))}) ON CONFLICT (id) DO NOTHING",
                (*values, utc_now()),
            )

    def get_outcome(self, tenant: str, answer_id: str) -> QueryOutcome:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {rows.OUTCOME_COLUMNS} FROM query_outcomes WHERE tenant = ? AND id = ?",
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
        with self._pool.transaction(write=True) as conn:
            # Inserted only when the tenant has the answer: another tenant's does not exist.
            row = conn.execute(
                f"INSERT INTO feedback ({rows.FEEDBACK_COLUMNS}) SELECT id, tenant, ?, ?, ?, ? "
                "FROM query_outcomes WHERE tenant = ? AND id = ? "
                "ON CONFLICT (answer_id) DO UPDATE SET kind = excluded.kind, "
                "value = excluded.value, comment = excluded.comment, "
                f"created_at = excluded.created_at RETURNING {rows.FEEDBACK_COLUMNS}",
                (kind, value, comment, utc_now(), tenant, answer_id),
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
                "WHERE o.tenant = ? AND o.experiment_id = ? "
                "ORDER BY o.created_at, o.rowid LIMIT ?",
                (tenant, experiment_id, limit),
            ).fetchall()
        return [rows.outcome_with_feedback(row) for row in listed]

    def recent_outcomes(
        self, tenant: str, *, collection: str | None = None, limit: int = 1000
    ) -> list[QueryOutcome]:
        rows.check_limit(limit)
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.OUTCOME_COLUMNS} FROM query_outcomes WHERE tenant = ? "
                "AND (? IS NULL OR collection = ?) ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (tenant, collection, collection, limit),
            ).fetchall()
        return [rows.outcome_from_row(row) for row in listed]

    # -- evaluation runs ---------------------------------------------------------------------

    def put_eval_run(self, run: EvalRunRecord) -> EvalRunRecord:
        values = rows.eval_run_values(run)
        with self._pool.transaction(write=True) as conn:
            try:
                row = conn.execute(
                    f"INSERT INTO eval_runs ({rows.EVAL_RUN_COLUMNS}) "
                    f"VALUES ({', '.join('?' * (len(values) + 1))}) "
                    f"RETURNING {rows.EVAL_RUN_COLUMNS}",
                    (*values, utc_now()),
                ).fetchone()
            except sqlite3.IntegrityError as exc:
                raise rows.eval_run_taken(run.id) from exc
        return rows.eval_run_from_row(row)

    def get_eval_run(self, tenant: str, run_id: str) -> EvalRunRecord:
        with self._pool.transaction() as conn:
            listed = conn.execute(
                f"SELECT {rows.EVAL_RUN_COLUMNS} FROM eval_runs WHERE tenant = ? AND id = ?",
                (tenant, run_id),
            ).fetchall()
            if not listed and rows.is_prefix(run_id):  # substr, not LIKE: ids may hold % and _
                listed = conn.execute(
                    f"SELECT {rows.EVAL_RUN_COLUMNS} FROM eval_runs "
                    "WHERE tenant = ? AND substr(id, 1, ?) = ? ORDER BY id LIMIT 2",
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
                f"SELECT {rows.LISTED_EVAL_RUN_COLUMNS} FROM eval_runs WHERE tenant = ? "
                "AND (? IS NULL OR dataset_fingerprint = ?) AND (? IS NULL OR config_hash = ?) "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (tenant, dataset_fingerprint, dataset_fingerprint, config_hash, config_hash,
                 limit),
            ).fetchall()  # fmt: skip
        return [rows.eval_run_from_row(row) for row in listed]
