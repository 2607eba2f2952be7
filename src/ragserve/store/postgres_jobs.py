"""The ``JobStore`` on the server store's database (table from ``m003_jobs``).

Each transition is one ``UPDATE ... WHERE <expected state> RETURNING``: under ``READ
COMMITTED`` a racing update waits for the first, re-checks the WHERE on the row it left and
finds nothing, so exactly one worker wins a job. Times come from the database's clock
(``now()``), so workers on machines with skewed clocks agree on leases; records carry them as
ISO 8601 UTC strings with milliseconds, as the embedded store does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from psycopg import errors

from ragserve.errors import Conflict, InvalidQuery, JobNotFound, LeaseLost
from ragserve.store.jobs import WORKER_LOST
from ragserve.store.postgres_connections import PostgresPool
from ragserve.types import JOB_STATES, JobKind, JobRecord, JobState

_COLUMNS = (
    "id, tenant, kind, collection, state, payload, result, error, progress, attempts, "
    "max_attempts, batch_id, worker, lease_until, cancel_requested, created_at, updated_at, "
    "started_at, finished_at"
)
_FINAL_STATES = ("succeeded", "failed", "cancelled")
_LEASE = "now() + make_interval(secs => %s)"
# Back to the queue when attempts are left (failed otherwise; cancelled if that was asked).
_REQUEUE = (
    "state = CASE WHEN cancel_requested THEN 'cancelled' "
    "WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, "
    "finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN now() END, "
    "worker = NULL, lease_until = NULL"
)


class PostgresJobStore:
    """Jobs in the store's database, sharing its connection pool."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def create(self, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        rows = [
            (job.id, job.tenant, job.kind, job.collection, _dumps(job.payload),
             job.max_attempts, job.batch_id)
            for job in jobs
        ]  # fmt: skip
        with self._pool.transaction(write=True) as conn:
            try:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO jobs (id, tenant, kind, collection, state, payload, "
                        "max_attempts, batch_id, created_at, updated_at) "
                        "VALUES (%s, %s, %s, %s, 'queued', %s::jsonb, %s, %s, now(), now())",
                        rows,
                    )
            except errors.UniqueViolation as exc:
                raise Conflict(f"a job id is already taken: {exc.diag.message_detail}") from exc
            except psycopg.DataError as exc:  # e.g. \u0000, which JSONB refuses
                raise InvalidQuery(f"a job payload cannot be stored: {exc}") from exc
            stored = {
                row[0]: _job(row)
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE id = ANY(%s)", ([job.id for job in jobs],)
                )
            }
        return [stored[job.id] for job in jobs]

    def get(self, tenant: str, job_id: str) -> JobRecord:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = %s AND tenant = %s", (job_id, tenant)
            ).fetchone()
        if row is None:
            raise JobNotFound(f"job {job_id!r} not found")
        return _job(row)

    def list_jobs(
        self,
        tenant: str,
        *,
        state: JobState | None = None,
        collection: str | None = None,
        batch_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        if limit < 0 or offset < 0:
            raise InvalidQuery("limit and offset must not be negative")
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE tenant = %s "
                "AND (%s::text IS NULL OR state = %s) AND (%s::text IS NULL OR collection = %s) "
                "AND (%s::text IS NULL OR batch_id = %s) ORDER BY seq LIMIT %s OFFSET %s",
                (tenant, state, state, collection, collection, batch_id, batch_id, limit, offset),
            ).fetchall()
        return [_job(row) for row in rows]

    def claim(self, job_id: str, worker: str, *, lease_s: float) -> JobRecord | None:
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = %s, "
                f"lease_until = {_LEASE}, started_at = coalesce(started_at, now()), "
                "updated_at = now() WHERE id = %s AND state = 'queued' "
                f"AND NOT cancel_requested AND attempts < max_attempts RETURNING {_COLUMNS}",
                (worker, float(lease_s), job_id),
            ).fetchone()
        return None if row is None else _job(row)

    def heartbeat(
        self, job_id: str, worker: str, *, lease_s: float, progress: float | None = None
    ) -> bool:
        if progress is not None:
            progress = min(1.0, max(0.0, float(progress)))
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                f"UPDATE jobs SET lease_until = {_LEASE}, "
                "progress = coalesce(%s::float8, progress), updated_at = now() "
                "WHERE id = %s AND state = 'running' AND worker = %s RETURNING cancel_requested",
                (float(lease_s), progress, job_id, worker),
            ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job_id!r} is no longer leased by {worker!r}")
        return bool(row[0])

    def finish(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        result: dict[str, object] | None = None,
        error: str | None = None,
    ) -> JobRecord:
        if state not in _FINAL_STATES:
            raise ValueError(f"a job finishes succeeded, failed or cancelled, not {state!r}")
        with self._pool.transaction(write=True) as conn, _refused("a job result"):
            row = conn.execute(
                "UPDATE jobs SET state = %s, result = %s::jsonb, error = %s, "
                "progress = CASE WHEN %s = 'succeeded' THEN 1.0 ELSE progress END, "
                "lease_until = NULL, updated_at = now(), finished_at = now() "
                f"WHERE id = %s AND state = 'running' AND worker = %s RETURNING {_COLUMNS}",
                (state, None if result is None else _dumps(result), error, state, job_id,
                 worker),
            ).fetchone()  # fmt: skip
        if row is None:
            raise LeaseLost(f"job {job_id!r} is no longer leased by {worker!r}")
        return _job(row)

    def retry(self, job_id: str, worker: str, error: str) -> JobRecord:
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                f"UPDATE jobs SET {_REQUEUE}, error = %s, updated_at = now() "
                f"WHERE id = %s AND state = 'running' AND worker = %s RETURNING {_COLUMNS}",
                (error, job_id, worker),
            ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job_id!r} is no longer leased by {worker!r}")
        return _job(row)

    def cancel(self, tenant: str, job_id: str) -> JobRecord:
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE jobs SET "
                "state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "finished_at = CASE state WHEN 'queued' THEN now() ELSE finished_at END, "
                "cancel_requested = true, updated_at = now() "
                "WHERE id = %s AND tenant = %s AND state IN ('queued', 'running') "
                f"RETURNING {_COLUMNS}",
                (job_id, tenant),
            ).fetchone()
            found = None
            if row is None:
                found = conn.execute(
                    "SELECT state FROM jobs WHERE id = %s AND tenant = %s", (job_id, tenant)
                ).fetchone()
        if row is not None:
            return _job(row)
        if found is None:
            raise JobNotFound(f"job {job_id!r} not found")
        raise Conflict(f"job {job_id!r} has already finished ({found[0]}); nothing to cancel")

    def reclaim(self, *, queued_for_s: float, limit: int = 1000) -> list[JobRecord]:
        with self._pool.transaction(write=True) as conn:
            expired = conn.execute(
                f"UPDATE jobs SET {_REQUEUE}, "
                "error = CASE WHEN cancel_requested THEN error ELSE %s END, updated_at = now() "
                f"WHERE state = 'running' AND lease_until < now() RETURNING seq, {_COLUMNS}",
                (WORKER_LOST,),
            ).fetchall()
            # SKIP LOCKED: two reconcilers at once each return a job at most once between them.
            stale = conn.execute(
                "UPDATE jobs SET updated_at = now() WHERE seq IN (SELECT seq FROM jobs "
                "WHERE state = 'queued' AND updated_at <= now() - make_interval(secs => %s) "
                "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"RETURNING seq, {_COLUMNS}",
                (float(queued_for_s), limit),
            ).fetchall()
        rows = [*expired, *stale]
        rows.sort(key=lambda row: (row[16], row[0]))  # created_at, then creation order
        return [_job(row[1:]) for row in rows[:limit]]

    def counts(self, tenant: str | None = None) -> dict[JobState, int]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM jobs WHERE %s::text IS NULL OR tenant = %s "
                "GROUP BY state",
                (tenant, tenant),
            ).fetchall()
        found = dict(rows)
        return {state: int(found.get(state, 0)) for state in JOB_STATES}


@contextmanager
def _refused(what: str) -> Iterator[None]:
    """Values JSON allows but PostgreSQL refuses (``\\u0000``) are the caller's error."""
    try:
        yield
    except psycopg.DataError as exc:
        raise InvalidQuery(f"{what} cannot be stored: {exc}") from exc


def _job(row: Sequence[Any]) -> JobRecord:
    (job_id, tenant, kind, collection, state, payload, result, error, progress, attempts,
     max_attempts, batch_id, worker, lease_until, cancel_requested, created_at, updated_at,
     started_at, finished_at) = row  # fmt: skip
    return JobRecord(
        id=job_id,
        tenant=tenant,
        kind=cast(JobKind, kind),
        collection=collection,
        state=cast(JobState, state),  # the CHECK constraint admits only JobState values
        payload=payload,
        result=result,
        error=error,
        progress=float(progress),
        attempts=int(attempts),
        max_attempts=int(max_attempts),
        batch_id=batch_id,
        worker=worker,
        lease_until=_iso(lease_until),
        cancel_requested=bool(cancel_requested),
        created_at=_iso(created_at) or "",
        updated_at=_iso(updated_at) or "",
        started_at=_iso(started_at),
        finished_at=_iso(finished_at),
    )


def _iso(moment: datetime | None) -> str | None:
    """As the embedded store writes times: UTC, milliseconds, ``+00:00``."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _dumps(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidQuery(f"job payloads and results must be JSON: {exc}") from exc
