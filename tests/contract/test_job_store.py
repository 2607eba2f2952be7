"""The JobStore contract: every backend in ``BACKENDS`` must pass this suite unchanged.

Real databases; two store instances on one database stand for two processes (API and
worker). A backend joins by adding a URL factory to ``BACKENDS``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragserve.config import StoreSettings
from ragserve.errors import Conflict, InvalidQuery, JobNotFound, LeaseLost
from ragserve.store import Store, open_store
from ragserve.types import JOB_STATES, JobKind, JobRecord

T1, T2 = "tenant-a", "tenant-b"
LEASE_S = 30.0


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'ragserve.db'}"


def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on the session's PostgreSQL (see ``tests/pg.py``)."""
    url: str = request.getfixturevalue("postgres_url")
    return url


# name -> a fresh, empty database's URL for one test; a server backend can reach its own
# (session) fixtures through ``request.getfixturevalue``.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite": sqlite_url,
    "postgresql": postgres_url,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
def open_one(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens independent store instances on the same database; closes them all after."""
    opened: list[Store] = []

    def make() -> Store:
        store = open_store(StoreSettings(url=store_url, busy_timeout_ms=10_000))
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(open_one: Callable[[], Store]) -> Store:
    return open_one()


def job(
    tenant: str = T1,
    *,
    kind: JobKind = "ingest",
    collection: str = "papers",
    batch_id: str | None = None,
    max_attempts: int = 3,
    payload: dict[str, object] | None = None,
) -> JobRecord:
    return JobRecord(
        id=uuid.uuid4().hex,
        tenant=tenant,
        kind=kind,
        collection=collection,
        payload=payload if payload is not None else {"source": "a.txt", "n": 1},
        max_attempts=max_attempts,
        batch_id=batch_id,
    )


def created(store: Store, **kwargs: object) -> JobRecord:
    (record,) = store.jobs.create([job(**kwargs)])  # type: ignore[arg-type]
    return record


def test_create_stores_queued_jobs_in_order(store: Store) -> None:
    """Created jobs come back queued, with no attempt, timestamps set and payload intact."""
    jobs = [job(batch_id="b1", payload={"source": f"{i}.txt", "tags": ["x"]}) for i in range(3)]
    stored = store.jobs.create(jobs)
    assert [j.id for j in stored] == [j.id for j in jobs]
    first = stored[0]
    assert (first.state, first.attempts, first.progress, first.result) == ("queued", 0, 0.0, None)
    assert first.payload == {"source": "0.txt", "tags": ["x"]}
    assert first.created_at
    assert first.updated_at
    assert (first.started_at, first.finished_at, first.worker, first.lease_until) == (
        None,
        None,
        None,
        None,
    )
    assert store.jobs.get(T1, first.id) == first


def test_create_is_all_or_nothing(store: Store) -> None:
    """A batch with a taken id is refused whole: none of its jobs exists."""
    existing = created(store)
    fresh = job()
    taken = JobRecord(existing.id, T1, "ingest", "papers")
    with pytest.raises(Conflict):
        store.jobs.create([fresh, taken])
    with pytest.raises(JobNotFound):
        store.jobs.get(T1, fresh.id)


def test_another_tenants_job_does_not_exist(store: Store) -> None:
    """Get, list and cancel are tenant-scoped: tenant B sees nothing of tenant A's job."""
    record = created(store)
    with pytest.raises(JobNotFound):
        store.jobs.get(T2, record.id)
    with pytest.raises(JobNotFound):
        store.jobs.cancel(T2, record.id)
    assert store.jobs.list_jobs(T2) == []
    assert store.jobs.get(T1, record.id).state == "queued"


def test_list_filters_and_pages(store: Store) -> None:
    """Filters by state, collection and batch combine; pages follow creation order."""
    batch = store.jobs.create([job(batch_id="b1") for _ in range(4)])
    other = created(store, collection="notes")
    store.jobs.claim(batch[0].id, "w1", lease_s=LEASE_S)
    assert [j.id for j in store.jobs.list_jobs(T1)] == [*(j.id for j in batch), other.id]
    assert [j.id for j in store.jobs.list_jobs(T1, batch_id="b1", limit=2, offset=1)] == [
        batch[1].id,
        batch[2].id,
    ]
    assert [j.id for j in store.jobs.list_jobs(T1, state="running")] == [batch[0].id]
    assert [j.id for j in store.jobs.list_jobs(T1, collection="notes")] == [other.id]
    assert store.jobs.list_jobs(T1, collection="notes", state="running") == []
    with pytest.raises(InvalidQuery):
        store.jobs.list_jobs(T1, offset=-1)


def test_claim_runs_the_job_once(store: Store) -> None:
    """The first claim wins (one attempt, lease, started_at); a second claim is refused."""
    record = created(store)
    claimed = store.jobs.claim(record.id, "w1", lease_s=LEASE_S)
    assert claimed is not None
    assert (claimed.state, claimed.attempts, claimed.worker) == ("running", 1, "w1")
    assert claimed.started_at is not None
    assert claimed.lease_until is not None
    assert claimed.lease_until > claimed.updated_at
    assert store.jobs.claim(record.id, "w2", lease_s=LEASE_S) is None
    assert store.jobs.claim(uuid.uuid4().hex, "w1", lease_s=LEASE_S) is None


def test_concurrent_claims_from_two_processes_have_one_winner(
    open_one: Callable[[], Store],
) -> None:
    """Claims racing from two store instances (threads) on every job: one winner per job."""
    first, second = open_one(), open_one()
    jobs = first.jobs.create([job() for _ in range(40)])
    wins: dict[str, list[str]] = {"a": [], "b": []}

    def claim_all(store: Store, worker: str) -> None:
        for record in jobs:
            if store.jobs.claim(record.id, worker, lease_s=LEASE_S) is not None:
                wins[worker].append(record.id)

    threads = [
        threading.Thread(target=claim_all, args=(first, "a")),
        threading.Thread(target=claim_all, args=(second, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins["a"] + wins["b"]) == sorted(j.id for j in jobs)


def test_heartbeat_extends_the_lease_and_records_progress(store: Store) -> None:
    """A heartbeat by the lease holder moves lease_until on and stores progress (clamped)."""
    record = created(store)
    claimed = store.jobs.claim(record.id, "w1", lease_s=1.0)
    assert claimed is not None
    assert claimed.lease_until is not None
    assert store.jobs.heartbeat(record.id, "w1", lease_s=LEASE_S, progress=0.4) is False
    after = store.jobs.get(T1, record.id)
    assert after.progress == pytest.approx(0.4)
    assert after.lease_until is not None
    assert after.lease_until > claimed.lease_until
    store.jobs.heartbeat(record.id, "w1", lease_s=LEASE_S, progress=7)
    assert store.jobs.get(T1, record.id).progress == 1.0


def test_only_the_lease_holder_may_heartbeat_or_finish(store: Store) -> None:
    """Another worker's heartbeat, finish or retry raises LeaseLost and changes nothing."""
    record = created(store)
    store.jobs.claim(record.id, "w1", lease_s=LEASE_S)
    with pytest.raises(LeaseLost):
        store.jobs.heartbeat(record.id, "w2", lease_s=LEASE_S)
    with pytest.raises(LeaseLost):
        store.jobs.finish(record.id, "w2", "succeeded", result={})
    with pytest.raises(LeaseLost):
        store.jobs.retry(record.id, "w2", "boom")
    assert store.jobs.get(T1, record.id).state == "running"


def test_finish_records_result_or_error_once(store: Store) -> None:
    """Success stores the result with progress 1; a finished job cannot be finished again."""
    ok, bad = created(store), created(store)
    store.jobs.claim(ok.id, "w1", lease_s=LEASE_S)
    store.jobs.claim(bad.id, "w1", lease_s=LEASE_S)
    done = store.jobs.finish(ok.id, "w1", "succeeded", result={"status": "added", "chunks": 2})
    assert (done.state, done.result, done.progress) == (
        "succeeded",
        {"status": "added", "chunks": 2},
        1.0,
    )
    assert done.finished_at is not None
    assert done.lease_until is None
    failed = store.jobs.finish(bad.id, "w1", "failed", error="not a PDF")
    assert (failed.state, failed.error, failed.result) == ("failed", "not a PDF", None)
    with pytest.raises(LeaseLost):
        store.jobs.finish(ok.id, "w1", "failed", error="late")
    with pytest.raises(ValueError, match="finishes"):
        store.jobs.finish(ok.id, "w1", "queued")
    assert store.jobs.get(T1, ok.id).state == "succeeded"


def test_retry_requeues_until_attempts_run_out(store: Store) -> None:
    """A transient failure requeues the job while attempts remain, then fails it with the reason."""
    record = created(store, max_attempts=2)
    store.jobs.claim(record.id, "w1", lease_s=LEASE_S)
    again = store.jobs.retry(record.id, "w1", "store busy")
    assert (again.state, again.error, again.worker, again.attempts) == (
        "queued",
        "store busy",
        None,
        1,
    )
    second = store.jobs.claim(record.id, "w2", lease_s=LEASE_S)
    assert second is not None
    assert second.attempts == 2
    final = store.jobs.retry(record.id, "w2", "store still busy")
    assert (final.state, final.error) == ("failed", "store still busy")
    assert final.finished_at is not None
    assert store.jobs.claim(record.id, "w3", lease_s=LEASE_S) is None


def test_cancel_a_queued_job_at_once(store: Store) -> None:
    """A queued job is cancelled immediately and can no longer be claimed."""
    record = created(store)
    cancelled = store.jobs.cancel(T1, record.id)
    assert (cancelled.state, cancelled.cancel_requested) == ("cancelled", True)
    assert cancelled.finished_at is not None
    assert store.jobs.claim(record.id, "w1", lease_s=LEASE_S) is None


def test_cancel_a_running_job_asks_its_worker(store: Store) -> None:
    """A running job stays running with cancel_requested; its next heartbeat says stop."""
    record = created(store)
    store.jobs.claim(record.id, "w1", lease_s=LEASE_S)
    asked = store.jobs.cancel(T1, record.id)
    assert (asked.state, asked.cancel_requested) == ("running", True)
    assert store.jobs.cancel(T1, record.id).state == "running"  # asking again is harmless
    assert store.jobs.heartbeat(record.id, "w1", lease_s=LEASE_S) is True
    done = store.jobs.finish(record.id, "w1", "cancelled", error="cancelled on request")
    assert done.state == "cancelled"


def test_cancel_a_finished_job_is_a_conflict(store: Store) -> None:
    """Cancelling a job that has ended raises Conflict and leaves it as it was."""
    record = created(store)
    store.jobs.claim(record.id, "w1", lease_s=LEASE_S)
    store.jobs.finish(record.id, "w1", "succeeded", result={})
    with pytest.raises(Conflict):
        store.jobs.cancel(T1, record.id)
    assert store.jobs.get(T1, record.id).state == "succeeded"


def test_retry_of_a_job_asked_to_cancel_cancels_it(store: Store) -> None:
    """A transient failure after a cancel request ends the job cancelled, not queued."""
    record = created(store)
    store.jobs.claim(record.id, "w1", lease_s=LEASE_S)
    store.jobs.cancel(T1, record.id)
    assert store.jobs.retry(record.id, "w1", "store busy").state == "cancelled"


def test_reclaim_requeues_jobs_whose_worker_was_lost(store: Store) -> None:
    """An expired lease sends the job back to the queue (attempt counted), or fails it after
    the last attempt; the lost worker can no longer finish it; live leases are untouched."""
    lost, last, live = created(store), created(store, max_attempts=1), created(store)
    store.jobs.claim(lost.id, "dead", lease_s=0.05)
    store.jobs.claim(last.id, "dead", lease_s=0.05)
    store.jobs.claim(live.id, "alive", lease_s=LEASE_S)
    time.sleep(0.15)
    reclaimed = {j.id: j for j in store.jobs.reclaim(queued_for_s=3600)}
    assert {i: j.state for i, j in reclaimed.items()} == {lost.id: "queued", last.id: "failed"}
    assert (reclaimed[lost.id].attempts, reclaimed[lost.id].worker) == (1, None)
    assert "worker lost" in (reclaimed[lost.id].error or "")
    failed = store.jobs.get(T1, last.id)
    assert failed.state == "failed"
    assert "worker lost" in (failed.error or "")
    assert store.jobs.get(T1, live.id).state == "running"
    with pytest.raises(LeaseLost):
        store.jobs.finish(lost.id, "dead", "succeeded", result={})
    again = store.jobs.claim(lost.id, "w2", lease_s=LEASE_S)
    assert again is not None
    assert again.attempts == 2


def test_reclaim_cancels_an_orphan_that_was_asked_to_stop(store: Store) -> None:
    """An orphaned job with a cancel request ends cancelled rather than queued again (and is
    returned, ended, so its staged input can go)."""
    record = created(store)
    store.jobs.claim(record.id, "dead", lease_s=0.05)
    store.jobs.cancel(T1, record.id)
    time.sleep(0.15)
    assert [(j.id, j.state) for j in store.jobs.reclaim(queued_for_s=3600)] == [
        (record.id, "cancelled")
    ]
    assert store.jobs.get(T1, record.id).state == "cancelled"
    assert store.jobs.reclaim(queued_for_s=3600) == []


def test_reclaim_returns_stale_queued_jobs_once_per_period(store: Store) -> None:
    """A job queued for longer than queued_for_s is returned, then not again at once."""
    record = created(store)
    time.sleep(1.05)  # a period long enough that a loaded machine still asks again within it
    assert [j.id for j in store.jobs.reclaim(queued_for_s=1.0)] == [record.id]
    assert store.jobs.reclaim(queued_for_s=1.0) == []
    # 0 s: every queued job, however recent (a start-up sweep picks up everything left)
    assert [j.id for j in store.jobs.reclaim(queued_for_s=0.0)] == [record.id]
    assert store.jobs.get(T1, record.id).state == "queued"


def test_counts_by_state(store: Store) -> None:
    """Counts cover every state, per tenant or overall."""
    a, b, _ = created(store), created(store), created(store, tenant=T2)
    store.jobs.claim(a.id, "w1", lease_s=LEASE_S)
    store.jobs.cancel(T1, b.id)
    expected = dict.fromkeys(JOB_STATES, 0) | {"running": 1, "cancelled": 1}
    assert store.jobs.counts(T1) == expected
    assert store.jobs.counts() == expected | {"queued": 1}
