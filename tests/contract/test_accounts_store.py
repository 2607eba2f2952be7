"""The AccountStore contract (API keys, usage rows, tenant LLM settings) on every store backend.

A backend joins by adding a URL factory to ``BACKENDS`` and, for the migration test, its
``Schema`` to ``SCHEMAS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Protocol

import psycopg
import pytest

from ragserve.config import StoreSettings
from ragserve.errors import BackendUnavailable, Conflict, InvalidQuery, KeyNotFound
from ragserve.store import Store, open_store, postgres_schema, schema
from ragserve.store.accounts import AccountStore
from ragserve.store.sqlite_connections import database_path
from ragserve.types import ApiKeyRecord, TenantLLMRecord, UsageDay


def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'store.db'}"


def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on the session's PostgreSQL (see ``tests/pg.py``)."""
    url: str = request.getfixturevalue("postgres_url")
    return url


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite": sqlite_url,
    "postgresql": postgres_url,
}


class Schema(Protocol):
    """What the migration test does to a database behind the store's back."""

    def migrate_first_only(self, url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """Apply only the first migration; returns the names applied."""
        ...

    def add_collection(self, url: str) -> None:
        """Insert collection ``c`` of tenant ``t`` with plain SQL."""
        ...

    def applied(self, url: str) -> list[str]:
        """Migration names recorded, in the order applied."""
        ...


class SqliteSchema:
    def migrate_first_only(self, url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        path = Path(database_path(url))
        path.parent.mkdir(parents=True)
        monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            return schema.migrate(conn)

    def add_collection(self, url: str) -> None:
        with closing(sqlite3.connect(database_path(url), isolation_level=None)) as conn:
            conn.execute(
                "INSERT INTO collections (tenant, name, version, created_at) "
                "VALUES ('t', 'c', 1, 'x')"
            )

    def applied(self, url: str) -> list[str]:
        with closing(sqlite3.connect(database_path(url))) as conn:
            return [n for (n,) in conn.execute("SELECT name FROM migrations ORDER BY rowid")]


class PostgresSchema:
    def migrate_first_only(self, url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        monkeypatch.setattr(postgres_schema, "MIGRATIONS", postgres_schema.MIGRATIONS[:1])
        with psycopg.connect(url, autocommit=True) as conn:
            return postgres_schema.migrate(conn)

    def add_collection(self, url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO collections (tenant, name, version) VALUES ('t', 'c', 1)")

    def applied(self, url: str) -> list[str]:
        with psycopg.connect(url) as conn:
            return [n for (n,) in conn.execute("SELECT name FROM migrations ORDER BY seq")]


SCHEMAS: dict[str, tuple[Schema, list[str]]] = {
    "sqlite": (SqliteSchema(), [name for name, _ in schema.MIGRATIONS]),
    "postgresql": (PostgresSchema(), [name for name, _ in postgres_schema.MIGRATIONS]),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[backend](request, tmp_path)


@pytest.fixture
def open_one(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens store instances on one database; all are closed after the test."""
    opened: list[Store] = []

    def open_store_instance() -> Store:
        store = open_store(StoreSettings(url=store_url, busy_timeout_ms=10_000))
        opened.append(store)
        return store

    yield open_store_instance
    for store in opened:
        store.close()


def key(key_id: str, tenant: str = "acme", created_at: str = "") -> ApiKeyRecord:
    return ApiKeyRecord(key_id, tenant, f"hash-{key_id}", ("read", "write"), "ci", created_at)


@pytest.fixture
def accounts(open_one: Callable[[], Store]) -> AccountStore:
    return open_one().accounts


def test_add_then_find_returns_the_record(accounts: AccountStore) -> None:
    """A stored key reads back field for field, with a creation time filled in."""
    accounts.add_api_key(key("k1"))
    found = accounts.find_api_key("k1")
    assert found is not None
    assert (found.key_id, found.tenant, found.key_hash, found.scopes, found.name) == (
        "k1", "acme", "hash-k1", ("read", "write"), "ci"
    )  # fmt: skip
    assert found.created_at
    assert found.active
    assert accounts.find_api_key("nope") is None


def test_duplicate_key_id_is_a_conflict(accounts: AccountStore) -> None:
    """A second key with a taken id is refused and the first stays as it was."""
    accounts.add_api_key(key("k1"))
    with pytest.raises(Conflict, match="k1"):
        accounts.add_api_key(key("k1", tenant="other"))
    found = accounts.find_api_key("k1")
    assert found is not None
    assert found.tenant == "acme"


def test_list_filters_by_tenant_in_creation_order(accounts: AccountStore) -> None:
    """Listing one tenant shows only its keys, oldest first; no tenant lists every key."""
    accounts.add_api_key(key("b", created_at="2024-01-02T00:00:00.000+00:00"))
    accounts.add_api_key(key("a", created_at="2024-01-03T00:00:00.000+00:00"))
    accounts.add_api_key(key("c", tenant="other", created_at="2024-01-01T00:00:00.000+00:00"))
    assert [k.key_id for k in accounts.list_api_keys("acme")] == ["b", "a"]
    assert [k.key_id for k in accounts.list_api_keys()] == ["c", "b", "a"]
    assert accounts.list_api_keys("nobody") == []


def test_revoke_is_idempotent(accounts: AccountStore) -> None:
    """Revoking sets revoked_at once; revoking again keeps the first time."""
    accounts.add_api_key(key("k1"))
    first = accounts.revoke_api_key("k1")
    assert first.revoked_at is not None
    assert not first.active
    again = accounts.revoke_api_key("k1", tenant="acme")
    assert again.revoked_at == first.revoked_at
    assert accounts.find_api_key("k1") == first


def test_revoke_unknown_or_other_tenants_key_is_not_found(accounts: AccountStore) -> None:
    """Another tenant's key does not exist for the caller, and stays active."""
    accounts.add_api_key(key("k1"))
    with pytest.raises(KeyNotFound):
        accounts.revoke_api_key("missing")
    with pytest.raises(KeyNotFound):
        accounts.revoke_api_key("k1", tenant="other")
    found = accounts.find_api_key("k1")
    assert found is not None
    assert found.active


def test_usage_adds_up_across_calls_and_days(accounts: AccountStore) -> None:
    """Each call adds to its day's row; days and tenants are kept apart."""
    accounts.record_usage("acme", "2024-03-01", questions=1, prompt_tokens=100)
    accounts.record_usage("acme", "2024-03-01", questions=2, completion_tokens=7, searches=1)
    accounts.record_usage("acme", "2024-03-02", documents=3, chunks=40)
    accounts.record_usage("other", "2024-03-01", questions=5)
    assert accounts.usage("acme", since="2024-03-01", until="2024-03-31") == [
        UsageDay("acme", "2024-03-01", questions=3, searches=1, prompt_tokens=100,
                 completion_tokens=7),
        UsageDay("acme", "2024-03-02", documents=3, chunks=40),
    ]  # fmt: skip


def test_usage_range_is_inclusive(accounts: AccountStore) -> None:
    """Both ends of the range are included; days outside it are not."""
    for day in ("2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03"):
        accounts.record_usage("acme", day, questions=1)
    days = [u.day for u in accounts.usage("acme", since="2024-03-01", until="2024-03-02")]
    assert days == ["2024-03-01", "2024-03-02"]
    assert [u.day for u in accounts.usage("acme", since="2024-03-03", until="2024-03-03")] == [
        "2024-03-03"
    ]


def test_zero_usage_writes_no_row(accounts: AccountStore) -> None:
    """Recording nothing leaves no row for the day."""
    accounts.record_usage("acme", "2024-03-01")
    assert accounts.usage("acme", since="2024-03-01", until="2024-03-01") == []


@pytest.mark.parametrize("day", ["2024-3-1", "20240301", "2024-02-30", "", "2024-03-01T00"])
def test_usage_refuses_malformed_days(accounts: AccountStore, day: str) -> None:
    """A day that is not YYYY-MM-DD is refused on write and on read."""
    with pytest.raises(InvalidQuery, match="YYYY-MM-DD"):
        accounts.record_usage("acme", day, questions=1)
    with pytest.raises(InvalidQuery, match="YYYY-MM-DD"):
        accounts.usage("acme", since=day, until="2024-12-31")


def test_usage_refuses_negative_counts_and_reversed_ranges(accounts: AccountStore) -> None:
    """Negative counts and a range that ends before it starts are input errors."""
    with pytest.raises(InvalidQuery, match="negative"):
        accounts.record_usage("acme", "2024-03-01", questions=-1)
    with pytest.raises(InvalidQuery, match="after"):
        accounts.usage("acme", since="2024-03-02", until="2024-03-01")


def test_tenant_llm_upsert_get_delete(accounts: AccountStore) -> None:
    """Setting twice keeps the latest record; deleting reports whether a row went."""
    assert accounts.get_tenant_llm("acme") is None
    accounts.set_tenant_llm(TenantLLMRecord("acme", "http://a/v1", "m1", "tok1", "2024-01-01"))
    accounts.set_tenant_llm(TenantLLMRecord("acme", "http://b/v1", "m2", None))
    found = accounts.get_tenant_llm("acme")
    assert found is not None
    assert (found.base_url, found.model, found.api_key_encrypted) == ("http://b/v1", "m2", None)
    assert found.updated_at > "2024-01-01"
    assert accounts.get_tenant_llm("other") is None
    assert accounts.delete_tenant_llm("acme") is True
    assert accounts.delete_tenant_llm("acme") is False
    assert accounts.get_tenant_llm("acme") is None


def test_ping_succeeds_then_fails_once_closed(open_one: Callable[[], Store]) -> None:
    """ping is a round trip to the database; a closed store is unavailable."""
    store = open_one()
    store.ping()
    store.accounts.ping()
    store.close()
    with pytest.raises(BackendUnavailable):
        store.ping()


def test_writes_are_seen_by_another_store_on_the_database(open_one: Callable[[], Store]) -> None:
    """Two stores on one database (two processes) see each other's key and usage writes."""
    first, second = open_one(), open_one()
    first.accounts.add_api_key(key("k1"))
    first.accounts.record_usage("acme", "2024-03-01", questions=1)
    second.accounts.record_usage("acme", "2024-03-01", questions=1)
    assert second.accounts.find_api_key("k1") is not None
    assert first.accounts.usage("acme", since="2024-03-01", until="2024-03-01")[0].questions == 2


def test_accounts_migration_upgrades_an_m001_database(
    backend: str,
    store_url: str,
    open_one: Callable[[], Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opening a database that has only m001 applies m002_accounts and keeps its data."""
    helper, every = SCHEMAS[backend]
    assert helper.migrate_first_only(store_url, monkeypatch) == ["m001_initial"]
    helper.add_collection(store_url)
    monkeypatch.undo()
    store = open_one()
    names = helper.applied(store_url)
    assert names == every
    assert names[:2] == ["m001_initial", "m002_accounts"]
    assert [c.name for c in store.list_collections("t")] == ["c"]
    store.accounts.add_api_key(key("k1"))
    assert store.accounts.find_api_key("k1") is not None
