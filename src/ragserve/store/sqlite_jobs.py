"""The ``JobStore`` on the embedded store's SQLite file (table from ``m003_jobs``).

Each transition is a single ``UPDATE ... WHERE <expected state> RETURNING`` inside a write
transaction, so concurrent workers (threads or processes) never both win one job.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from ragserve.errors import Conflict, InvalidQuery, JobNotFound, LeaseLost
from ragserve.store.jobs import WORKER_LOST
from ragserve.store.sqlite_connections import ConnectionPool
from ragserve.types import JOB_STATES, JobKind, JobRecord, JobState

_COLUMNS = (
    "id, tenant, kind, collection, state, payload, result, error, progress, attempts, "
    "max_attempts, batch_id, worker, lease_until, cancel_requested, created_at, updated_at, "
    "started_at, finished_at"
)
_FINAL_STATES = ("succeeded", "failed", "cancelled")


class SqliteJobStore:
    """Jobs in the store's database, sharing its connection pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def create(self, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        now = _iso(_now())
        rows = [
            (job.id, job.tenant, job.kind, job.collection, "queued", _dumps(job.payload),
             job.max_attempts, job.batch_id, now, now)
            for job in jobs
        ]  # fmt: skip
        with self._pool.transaction(write=True) as conn:
            try:
                conn.executemany(
                    "INSERT INTO jobs (id, tenant, kind, collection, state, payload, max_attempts, "
                    "batch_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"a job id is already taken: {exc}") from exc
            stored = {
                row[0]: _job(row)
                for chunk in _chunks([job.id for job in jobs], 500)
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            }
        return [stored[job.id] for job in jobs]

    def get(self, tenant: str, job_id: str) -> JobRecord:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
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
                f"SELECT {_COLUMNS} FROM jobs WHERE tenant = ? AND (? IS NULL OR state = ?) "
                "AND (? IS NULL OR collection = ?) AND (? IS NULL OR batch_id = ?) "
                "ORDER BY seq LIMIT ? OFFSET ?",
                (tenant, state, state, collection, collection, batch_id, batch_id, limit, offset),
            ).fetchall()
        return [_job(row) for row in rows]

    def claim(self, job_id: str, worker: str, *, lease_s: float) -> JobRecord | None:
        now = _now()
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, "
                "lease_until = ?, started_at = coalesce(started_at, ?), updated_at = ? "
                "WHERE id = ? AND state = 'queued' AND cancel_requested = 0 "
                f"AND attempts < max_attempts RETURNING {_COLUMNS}",
                (worker, _iso(now + _seconds(lease_s)), _iso(now), _iso(now), job_id),
            ).fetchone()
        return None if row is None else _job(row)

    def heartbeat(
        self, job_id: str, worker: str, *, lease_s: float, progress: float | None = None
    ) -> bool:
        now = _now()
        if progress is not None:
            progress = min(1.0, max(0.0, float(progress)))
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE jobs SET lease_until = ?, progress = coalesce(?, progress), "
                "updated_at = ? WHERE id = ? AND state = 'running' AND worker = ? "
                "RETURNING cancel_requested",
                (_iso(now + _seconds(lease_s)), progress, _iso(now), job_id, worker),
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
        now = _iso(_now())
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE jobs SET state = ?, result = ?, error = ?, "
                "progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END, "
                "lease_until = NULL, updated_at = ?, finished_at = ? "
                f"WHERE id = ? AND state = 'running' AND worker = ? RETURNING {_COLUMNS}",
                (state, None if result is None else _dumps(result), error, state, now, now,
                 job_id, worker),
            ).fetchone()  # fmt: skip
        if row is None:
            raise LeaseLost(f"job {job_id!r} is no longer leased by {worker!r}")
        return _job(row)

    def retry(self, job_id: str, worker: str, error: str) -> JobRecord:
        now = _iso(_now())
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                f"UPDATE jobs SET {_REQUEUE}, error = ?, updated_at = ? "
                f"WHERE id = ? AND state = 'running' AND worker = ? RETURNING {_COLUMNS}",
                (now, error, now, job_id, worker),
            ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job_id!r} is no longer leased by {worker!r}")
        return _job(row)

    def cancel(self, tenant: str, job_id: str) -> JobRecord:
        now = _iso(_now())
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE jobs SET "
                "state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "finished_at = CASE state WHEN 'queued' THEN ? ELSE finished_at END, "
                "cancel_requested = 1, updated_at = ? "
                "WHERE id = ? AND tenant = ? AND state IN ('queued', 'running') "
                f"RETURNING {_COLUMNS}",
                (now, now, job_id, tenant),
            ).fetchone()
            if row is None:
                found = conn.execute(
                    "SELECT state FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
                ).fetchone()
        if row is not None:
            return _job(row)
        if found is None:
            raise JobNotFound(f"job {job_id!r} not found")
        raise Conflict(f"job {job_id!r} has already finished ({found[0]}); nothing to cancel")

    def reclaim(self, *, queued_for_s: float, limit: int = 1000) -> list[JobRecord]:
        now = _now()
        stamp = _iso(now)
        with self._pool.transaction(write=True) as conn:
            expired = conn.execute(
                f"UPDATE jobs SET {_REQUEUE}, "
                "error = CASE WHEN cancel_requested = 1 THEN error ELSE ? END, updated_at = ? "
                f"WHERE state = 'running' AND lease_until < ? RETURNING {_COLUMNS}",
                (stamp, WORKER_LOST, stamp, stamp),
            ).fetchall()
            stale = conn.execute(
                "UPDATE jobs SET updated_at = ? WHERE seq IN (SELECT seq FROM jobs "
                "WHERE state = 'queued' AND updated_at <= ? ORDER BY seq LIMIT ?) "
                f"RETURNING {_COLUMNS}",
                (stamp, _iso(now - _seconds(queued_for_s)), limit),
            ).fetchall()
        jobs = [_job(row) for row in [*expired, *stale]]
        return sorted(jobs, key=lambda job: job.created_at)[:limit]

    def counts(self, tenant: str | None = None) -> dict[JobState, int]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM jobs WHERE ? IS NULL OR tenant = ? GROUP BY state",
                (tenant, tenant),
            ).fetchall()
        found = dict(rows)
        return {state: int(found.get(state, 0)) for state in JOB_STATES}


# Back to the queue when attempts are left (failed otherwise; cancelled if that was asked).
# Its first parameter is the time to use for finished_at.
_REQUEUE = (
    "state = CASE WHEN cancel_requested = 1 THEN 'cancelled' "
    "WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, "
    "finished_at = CASE WHEN cancel_requested = 1 OR attempts >= max_attempts THEN ? "
    "ELSE NULL END, worker = NULL, lease_until = NULL"
)


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
        payload=json.loads(payload),
        result=None if result is None else json.loads(result),
        error=error,
        progress=float(progress),
        attempts=int(attempts),
        max_attempts=int(max_attempts),
        batch_id=batch_id,
        worker=worker,
        lease_until=lease_until,
        cancel_requested=bool(cancel_requested),
        created_at=created_at,
        updated_at=updated_at,
        started_at=started_at,
        finished_at=finished_at,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _dumps(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidQuery(f"job payloads and results must be JSON: {exc}") from exc


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
