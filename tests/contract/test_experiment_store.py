"""The ExperimentStore contract: every backend in ``BACKENDS`` must pass this suite unchanged.

Real databases; two store instances on one database stand for two API replicas. A backend
joins by adding a URL factory to ``BACKENDS``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from ragserve.config import StoreSettings
from ragserve.errors import (
    AnswerNotFound,
    ConfigNotFound,
    Conflict,
    EvalRunNotFound,
    ExperimentNotFound,
    InvalidQuery,
    RagError,
)
from ragserve.store import Store, open_store
from ragserve.store.experiments import (
    EXPERIMENT_STATES,
    EvalRunRecord,
    ExperimentRecord,
    ExperimentState,
    QueryOutcome,
    Variant,
)

T1, T2 = "tenant-a", "tenant-b"

# The service's actions on the state machine of store/experiments.py: (allowed_from, to).
ACTIONS: dict[str, tuple[tuple[ExperimentState, ...], ExperimentState]] = {
    "start": (("draft",), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "stop": (("running", "paused"), "stopped"),
    "promote": (("running", "paused", "stopped"), "promoted"),
}
# How to reach each state from draft.
PATHS: dict[ExperimentState, tuple[str, ...]] = {
    "draft": (),
    "running": ("start",),
    "paused": ("start", "pause"),
    "stopped": ("start", "stop"),
    "promoted": ("start", "promote"),
}


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


def experiment(
    tenant: str = T1, *, name: str | None = None, collection: str = "papers"
) -> ExperimentRecord:
    return ExperimentRecord(
        id=uuid.uuid4().hex,
        tenant=tenant,
        name=name or f"exp-{uuid.uuid4().hex[:8]}",
        collection=collection,
        variants=(Variant("a", "base", 1, 0.5), Variant("b", "rerank", 2, 0.5)),
        subject="key",
        description="reranker on or off",
    )


def created(store: Store, **kwargs: str) -> ExperimentRecord:
    return store.experiments.create_experiment(experiment(**kwargs))


def act(store: Store, record: ExperimentRecord, action: str, **kwargs: str) -> ExperimentRecord:
    allowed_from, to = ACTIONS[action]
    return store.experiments.transition(record.tenant, record.id, allowed_from, to, **kwargs)


def outcome(
    tenant: str = T1,
    *,
    answer_id: str | None = None,
    experiment_id: str | None = None,
    collection: str = "papers",
    prompt_tokens: int = 120,
) -> QueryOutcome:
    return QueryOutcome(
        id=answer_id or uuid.uuid4().hex,
        tenant=tenant,
        collection=collection,
        config_hash="cfg-1",
        experiment_id=experiment_id,
        variant=None if experiment_id is None else "b",
        subject_hash="0123456789abcdef",
        stages_ms={"embed": 1.5, "retrieve": 3.25, "generate": 80.0, "total": 85.0},
        prompt_tokens=prompt_tokens,
        completion_tokens=30,
        cached=False,
        sources_found=True,
        abstained=True,
    )


def eval_run(
    tenant: str = T1,
    *,
    run_id: str | None = None,
    fingerprint: str = "fp-1",
    config_hash: str = "cfg-1",
) -> EvalRunRecord:
    return EvalRunRecord(
        id=run_id or uuid.uuid4().hex,
        tenant=tenant,
        kind="beir",
        dataset="scifact",
        dataset_fingerprint=fingerprint,
        config_hash=config_hash,
        config={"retrieve": {"k": 10, "hybrid": True}, "rerank": None},
        metrics={"ndcg@10": 0.61, "recall@100": 0.9},
        per_query={"q1": {"ndcg@10": 1.0}, "q2": {"ndcg@10": 0.22}},
        timing={"total_s": 12.5},
        label="baseline",
        config_name="base",
        experiment_id="exp-1",
        variant="a",
    )


def is_utc_iso(stamp: str | None) -> bool:
    return stamp is not None and datetime.fromisoformat(stamp).utcoffset() is not None


# -- pipeline configurations -----------------------------------------------------------------


def test_put_config_numbers_versions_and_reuses_an_identical_latest(store: Store) -> None:
    """Each new hash is the next version; the latest's own hash returns it without writing."""
    configs = store.experiments
    first = configs.put_config(T1, "base", {"k": 10}, config_hash="h1", index_hash="i1")
    second = configs.put_config(
        T1, "base", {"k": 20}, config_hash="h2", index_hash="i1", description="more"
    )
    again = configs.put_config(T1, "base", {"k": 20}, config_hash="h2", index_hash="i1")
    back = configs.put_config(T1, "base", {"k": 10}, config_hash="h1", index_hash="i1")
    assert [r.version for r in (first, second, again, back)] == [1, 2, 2, 3]
    assert again == second
    assert (second.ref, second.config, second.description) == ("base@2", {"k": 20}, "more")
    assert is_utc_iso(first.created_at)
    assert [r.version for r in configs.config_versions(T1, "base")] == [1, 2, 3]


def test_get_config_returns_the_latest_or_the_version_asked(store: Store) -> None:
    """Without a version the latest comes back; an unknown name or version is ConfigNotFound."""
    config = {"retrieve": {"k": 10, "hybrid": True}, "rerank": None, "name": "café"}
    first = store.experiments.put_config(T1, "base", config, config_hash="h1", index_hash="i1")
    latest = store.experiments.put_config(T1, "base", {}, config_hash="h2", index_hash="i2")
    assert store.experiments.get_config(T1, "base") == latest
    assert store.experiments.get_config(T1, "base", 1) == first
    assert store.experiments.get_config(T1, "base", 1).config == config
    with pytest.raises(ConfigNotFound):
        store.experiments.get_config(T1, "base", 3)
    with pytest.raises(ConfigNotFound):
        store.experiments.get_config(T1, "other")
    with pytest.raises(ConfigNotFound):
        store.experiments.config_versions(T1, "other")


def test_list_configs_gives_the_latest_version_of_each_name(store: Store) -> None:
    """Listing holds one record per name, its latest, ordered by name."""
    put = store.experiments.put_config
    put(T1, "zeta", {}, config_hash="z1", index_hash="i")
    put(T1, "Alpha", {}, config_hash="a1", index_hash="i")
    put(T1, "beta", {}, config_hash="b1", index_hash="i")
    put(T1, "beta", {}, config_hash="b2", index_hash="i")
    listed = [(r.name, r.version, r.config_hash) for r in store.experiments.list_configs(T1)]
    assert listed == [("Alpha", 1, "a1"), ("beta", 2, "b2"), ("zeta", 1, "z1")]


def test_concurrent_writers_of_one_name_never_share_a_version(
    open_one: Callable[[], Store],
) -> None:
    """Two replicas adding versions of one name at once get distinct, gapless versions."""
    stores = [open_one(), open_one()]
    versions: list[int] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(store: Store, writer: int) -> None:
        barrier.wait()
        for i in range(10):
            try:
                record = store.experiments.put_config(
                    T1, "base", {"i": i}, config_hash=f"{writer}-{i}", index_hash="i"
                )
            except RagError as exc:
                failures.append(exc)
            else:
                versions.append(record.version)

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(versions) == list(range(1, 21))


# -- experiments -----------------------------------------------------------------------------


def test_create_stores_a_draft_found_by_id_or_name(store: Store) -> None:
    """A new experiment is a draft whatever the record says, with times set by the store."""
    record = experiment()
    stored = store.experiments.create_experiment(replace(record, state="running", winner="a"))
    assert (stored.state, stored.winner, stored.started_at, stored.stopped_at) == (
        "draft",
        None,
        None,
        None,
    )
    assert (stored.variants, stored.subject, stored.description) == (
        record.variants,
        "key",
        "reranker on or off",
    )
    assert stored.variant("b") == Variant("b", "rerank", 2, 0.5)
    assert is_utc_iso(stored.created_at)
    assert stored.updated_at == stored.created_at
    assert store.experiments.get_experiment(T1, record.id) == stored
    assert store.experiments.get_experiment(T1, record.name) == stored
    with pytest.raises(ExperimentNotFound):
        store.experiments.get_experiment(T1, "nothing")


def test_create_refuses_a_taken_name_or_id(store: Store) -> None:
    """A tenant's experiment names and every id are unique; another tenant may reuse a name."""
    first = created(store, name="rerank-test")
    with pytest.raises(Conflict):
        store.experiments.create_experiment(experiment(name="rerank-test"))
    with pytest.raises(Conflict):
        store.experiments.create_experiment(replace(experiment(), id=first.id))
    other = store.experiments.create_experiment(experiment(T2, name="rerank-test"))
    assert store.experiments.get_experiment(T2, "rerank-test") == other
    assert store.experiments.get_experiment(T1, "rerank-test") == first


def test_get_prefers_the_id_over_another_experiments_name(store: Store) -> None:
    """When one experiment's name is another's id, the id wins."""
    target = created(store)
    created(store, name=target.id)
    assert store.experiments.get_experiment(T1, target.id) == target


def test_list_experiments_newest_first_and_by_collection(store: Store) -> None:
    """Listings are newest first and filter by collection."""
    a = created(store, collection="papers")
    b = created(store, collection="notes")
    c = created(store, collection="papers")
    assert [e.id for e in store.experiments.list_experiments(T1)] == [c.id, b.id, a.id]
    assert [e.id for e in store.experiments.list_experiments(T1, collection="papers")] == [
        c.id,
        a.id,
    ]
    assert store.experiments.list_experiments(T1, collection="other") == []


def test_every_action_from_every_state(store: Store) -> None:
    """Each action succeeds exactly from the states the diagram allows; a refusal is a
    Conflict naming the current state and changes nothing."""
    expected, actual = {}, {}
    for state, path in PATHS.items():
        for action, (allowed_from, to) in ACTIONS.items():
            record = created(store, collection=f"{state}-{action}")
            for step in path:
                record = act(store, record, step)
            expected[state, action] = (to, to) if state in allowed_from else ("conflict", state)
            try:
                result = act(store, record, action).state
            except Conflict as exc:
                result = "conflict" if f"is {state};" in str(exc) else f"unclear: {exc}"
            actual[state, action] = (result, store.experiments.get_experiment(T1, record.id).state)
    assert expected == actual
    assert set(PATHS) == set(EXPERIMENT_STATES)


def test_transition_times_and_winner(store: Store) -> None:
    """started_at is set by the first start and kept by a resume; stopped_at by the stop and
    kept by a later promote, which records the winner."""
    record = created(store)
    started = act(store, record, "start")
    assert is_utc_iso(started.started_at)
    assert started.stopped_at is None
    paused = act(store, started, "pause")
    resumed = act(store, paused, "resume")
    assert resumed.started_at == started.started_at
    assert resumed.updated_at >= paused.updated_at
    stopped = act(store, resumed, "stop")
    assert is_utc_iso(stopped.stopped_at)
    promoted = act(store, stopped, "promote", winner="b")
    assert (promoted.state, promoted.winner, promoted.stopped_at) == (
        "promoted",
        "b",
        stopped.stopped_at,
    )
    direct = act(store, act(store, created(store, collection="notes"), "start"), "promote")
    assert (direct.state, direct.winner) == ("promoted", None)
    assert is_utc_iso(direct.stopped_at)


def test_one_active_experiment_per_collection(store: Store) -> None:
    """A second experiment of a collection cannot start while the first runs or is paused;
    other collections and other tenants are unaffected; after a stop it can."""
    first, second = created(store), created(store)
    act(store, first, "start")
    with pytest.raises(Conflict, match=r"collection 'papers' already has an active experiment"):
        act(store, second, "start")
    assert store.experiments.get_experiment(T1, second.id).state == "draft"
    assert store.experiments.active_experiment(T1, "papers") == store.experiments.get_experiment(
        T1, first.id
    )
    act(store, first, "pause")
    assert store.experiments.active_experiment(T1, "papers") is None  # paused serves nobody
    with pytest.raises(Conflict, match=first.name):
        act(store, second, "start")
    assert act(store, created(store, collection="notes"), "start").state == "running"
    assert act(store, created(store, tenant=T2), "start").state == "running"
    act(store, first, "stop")
    assert act(store, second, "start").state == "running"
    assert store.experiments.active_experiment(T1, "papers") == store.experiments.get_experiment(
        T1, second.id
    )


def race_to_start(stores: list[Store], records: list[ExperimentRecord]) -> list[str]:
    """Start each record from its own store at the same moment; the states or "conflict"."""
    results: list[str] = []
    barrier = threading.Barrier(len(stores))

    def start(store: Store, record: ExperimentRecord) -> None:
        barrier.wait()
        try:
            results.append(act(store, record, "start").state)
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=start, args=p) for p in zip(stores, records, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


def test_racing_starts_of_one_collection_have_one_winner(open_one: Callable[[], Store]) -> None:
    """Two replicas starting two experiments of one collection at once: exactly one wins, the
    other gets Conflict."""
    stores = [open_one(), open_one()]
    for round_ in range(5):
        records = [created(stores[0], collection=f"race-{round_}") for _ in stores]
        assert race_to_start(stores, records) == ["conflict", "running"]
        states = sorted(stores[1].experiments.get_experiment(T1, r.id).state for r in records)
        assert states == ["draft", "running"]


def test_transition_of_an_unknown_experiment_is_not_found(store: Store) -> None:
    """An unknown id is ExperimentNotFound, not a Conflict."""
    with pytest.raises(ExperimentNotFound):
        store.experiments.transition(T1, "nope", ("draft",), "running")


# -- query outcomes and feedback -------------------------------------------------------------


def test_record_outcome_round_trips_and_ignores_a_repeated_id(store: Store) -> None:
    """An outcome comes back as recorded (time set by the store); a second write of its id
    changes nothing."""
    record = outcome(experiment_id="exp-1")
    store.experiments.record_outcome(record)
    stored = store.experiments.get_outcome(T1, record.id)
    assert stored == replace(record, created_at=stored.created_at)
    assert is_utc_iso(stored.created_at)
    store.experiments.record_outcome(outcome(answer_id=record.id, prompt_tokens=999))
    assert store.experiments.get_outcome(T1, record.id) == stored
    with pytest.raises(AnswerNotFound):
        store.experiments.get_outcome(T1, "nope")


def test_feedback_is_stored_and_replaced(store: Store) -> None:
    """Posting feedback again for an answer replaces it (kind, value and comment)."""
    record = outcome(experiment_id="exp-1")
    store.experiments.record_outcome(record)
    thumbs = store.experiments.put_feedback(T1, record.id, "thumbs", 0)
    assert (thumbs.answer_id, thumbs.tenant, thumbs.kind, thumbs.value, thumbs.comment) == (
        record.id,
        T1,
        "thumbs",
        0,
        None,
    )
    assert is_utc_iso(thumbs.created_at)
    score = store.experiments.put_feedback(T1, record.id, "score", 5, "spot on")
    assert (score.kind, score.value, score.comment) == ("score", 5, "spot on")
    (joined,) = store.experiments.experiment_outcomes(T1, "exp-1")
    assert joined.feedback == score


@pytest.mark.parametrize(
    ("kind", "value"),
    [("thumbs", 2), ("thumbs", -1), ("score", 0), ("score", 6), ("stars", 3), ("score", 2.5)],
)
def test_feedback_values_out_of_range_are_invalid(store: Store, kind: str, value: int) -> None:
    """Thumbs take 0 or 1, scores 1 to 5; anything else is InvalidQuery and stores nothing."""
    record = outcome(experiment_id="exp-1")
    store.experiments.record_outcome(record)
    with pytest.raises(InvalidQuery):
        store.experiments.put_feedback(T1, record.id, kind, value)  # type: ignore[arg-type]
    assert store.experiments.experiment_outcomes(T1, "exp-1")[0].feedback is None


def test_feedback_needs_the_tenants_own_answer(store: Store) -> None:
    """Feedback on an unknown answer or on another tenant's is AnswerNotFound, and leaves the
    owner's feedback alone."""
    record = outcome(experiment_id="exp-1")
    store.experiments.record_outcome(record)
    mine = store.experiments.put_feedback(T1, record.id, "thumbs", 1)
    with pytest.raises(AnswerNotFound):
        store.experiments.put_feedback(T1, "nope", "thumbs", 1)
    with pytest.raises(AnswerNotFound):
        store.experiments.put_feedback(T2, record.id, "thumbs", 0)
    assert store.experiments.experiment_outcomes(T1, "exp-1")[0].feedback == mine


def test_experiment_outcomes_are_oldest_first_with_their_feedback(store: Store) -> None:
    """An experiment's outcomes come in recording order, each with its feedback or None;
    other experiments' outcomes are left out and ``limit`` keeps the oldest."""
    ours = [outcome(experiment_id="exp-1") for _ in range(4)]
    for record in [ours[0], outcome(experiment_id="exp-2"), *ours[1:], outcome()]:
        store.experiments.record_outcome(record)
    rated = store.experiments.put_feedback(T1, ours[2].id, "score", 3)
    joined = store.experiments.experiment_outcomes(T1, "exp-1")
    assert [j.outcome.id for j in joined] == [o.id for o in ours]
    assert [j.feedback for j in joined] == [None, None, rated, None]
    limited = store.experiments.experiment_outcomes(T1, "exp-1", limit=2)
    assert [j.outcome.id for j in limited] == [o.id for o in ours[:2]]
    assert store.experiments.experiment_outcomes(T1, "exp-3") == []


def test_recent_outcomes_newest_first_by_collection(store: Store) -> None:
    """Recent outcomes are the newest first, filtered by collection and cut at ``limit``."""
    records = [outcome(collection=c) for c in ("papers", "notes", "papers", "papers")]
    for record in records:
        store.experiments.record_outcome(record)
    recent = store.experiments.recent_outcomes(T1)
    assert [o.id for o in recent] == [r.id for r in reversed(records)]
    papers = store.experiments.recent_outcomes(T1, collection="papers", limit=2)
    assert [o.id for o in papers] == [records[3].id, records[2].id]
    with pytest.raises(InvalidQuery):
        store.experiments.recent_outcomes(T1, limit=-1)


# -- evaluation runs -------------------------------------------------------------------------


def test_eval_run_round_trips_and_its_id_is_unique(store: Store) -> None:
    """A stored run comes back whole, time set by the store; its id cannot be stored again."""
    run = eval_run()
    stored = store.experiments.put_eval_run(run)
    assert stored == replace(run, created_at=stored.created_at)
    assert is_utc_iso(stored.created_at)
    assert store.experiments.get_eval_run(T1, run.id) == stored
    with pytest.raises(Conflict):
        store.experiments.put_eval_run(eval_run(T2, run_id=run.id))


def test_eval_run_metrics_must_be_finite_json(store: Store) -> None:
    """A NaN metric is InvalidQuery and nothing is stored."""
    run = replace(eval_run(), metrics={"ndcg@10": float("nan")})
    with pytest.raises(InvalidQuery):
        store.experiments.put_eval_run(run)
    with pytest.raises(EvalRunNotFound):
        store.experiments.get_eval_run(T1, run.id)


def test_get_eval_run_by_unique_prefix(store: Store) -> None:
    """A prefix of 6 or more characters finds its one run; an exact id wins over a longer id
    it prefixes; a shared prefix is ambiguous; a short or wildcard-like prefix finds nothing."""
    for run_id in ("abcdef01", "abcdef02", "run123", "run1234", "ab_def99", "zz%zzz99"):
        store.experiments.put_eval_run(eval_run(run_id=run_id))
    assert store.experiments.get_eval_run(T1, "abcdef01").id == "abcdef01"
    assert store.experiments.get_eval_run(T1, "run123").id == "run123"
    assert store.experiments.get_eval_run(T1, "ab_def").id == "ab_def99"
    assert store.experiments.get_eval_run(T1, "zz%zzz").id == "zz%zzz99"
    with pytest.raises(EvalRunNotFound, match="ambiguous"):
        store.experiments.get_eval_run(T1, "abcdef")
    with pytest.raises(EvalRunNotFound):
        store.experiments.get_eval_run(T1, "abcde")  # too short to be a prefix
    with pytest.raises(EvalRunNotFound):
        store.experiments.get_eval_run(T1, "abXdef")  # _ is no wildcard
    with pytest.raises(EvalRunNotFound):
        store.experiments.get_eval_run(T1, "zzXzzz")  # nor is %


def test_list_eval_runs_newest_first_filtered_without_per_query(store: Store) -> None:
    """Listings are newest first, filter by fingerprint and configuration hash, honour
    ``limit`` and leave per_query empty (get has it)."""
    runs = [
        store.experiments.put_eval_run(eval_run(fingerprint=fp, config_hash=ch))
        for fp, ch in (("fp-1", "c1"), ("fp-2", "c1"), ("fp-1", "c2"), ("fp-1", "c1"))
    ]
    listed = store.experiments.list_eval_runs(T1)
    assert [r.id for r in listed] == [r.id for r in reversed(runs)]
    assert {r.per_query == {} for r in listed} == {True}
    assert listed[0] == replace(runs[3], per_query={})
    by_fingerprint = store.experiments.list_eval_runs(T1, dataset_fingerprint="fp-1")
    assert [r.id for r in by_fingerprint] == [runs[3].id, runs[2].id, runs[0].id]
    both = store.experiments.list_eval_runs(T1, dataset_fingerprint="fp-1", config_hash="c1")
    assert [r.id for r in both] == [runs[3].id, runs[0].id]
    assert [r.id for r in store.experiments.list_eval_runs(T1, limit=1)] == [runs[3].id]
    assert store.experiments.get_eval_run(T1, runs[0].id).per_query == runs[0].per_query


# -- tenant isolation ------------------------------------------------------------------------


def test_another_tenants_rows_do_not_exist(store: Store) -> None:
    """Every getter, listing and change is tenant-scoped: tenant B sees none of A's rows."""
    ex = store.experiments
    ex.put_config(T1, "base", {"k": 1}, config_hash="h1", index_hash="i1")
    record = act(store, created(store), "start")
    answer = outcome(experiment_id=record.id)
    ex.record_outcome(answer)
    ex.put_feedback(T1, answer.id, "thumbs", 1)
    run = ex.put_eval_run(eval_run(run_id="abcdef0123"))
    for call, error in [
        (lambda: ex.get_config(T2, "base"), ConfigNotFound),
        (lambda: ex.get_config(T2, "base", 1), ConfigNotFound),
        (lambda: ex.config_versions(T2, "base"), ConfigNotFound),
        (lambda: ex.get_experiment(T2, record.id), ExperimentNotFound),
        (lambda: ex.get_experiment(T2, record.name), ExperimentNotFound),
        (lambda: ex.transition(T2, record.id, ("running",), "paused"), ExperimentNotFound),
        (lambda: ex.get_outcome(T2, answer.id), AnswerNotFound),
        (lambda: ex.put_feedback(T2, answer.id, "thumbs", 0), AnswerNotFound),
        (lambda: ex.get_eval_run(T2, run.id), EvalRunNotFound),
        (lambda: ex.get_eval_run(T2, "abcdef"), EvalRunNotFound),
    ]:
        with pytest.raises(error):
            call()
    assert ex.list_configs(T2) == []
    assert ex.list_experiments(T2) == []
    assert ex.active_experiment(T2, "papers") is None
    assert ex.experiment_outcomes(T2, record.id) == []
    assert ex.recent_outcomes(T2) == []
    assert ex.list_eval_runs(T2) == []
    assert ex.get_experiment(T1, record.id).state == "running"
    assert ex.experiment_outcomes(T1, record.id)[0].feedback is not None
