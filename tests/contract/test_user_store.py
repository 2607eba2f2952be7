"""The AccountStore contract for user logins (``m006_users``) on every store backend.

Backends come from ``test_accounts_store``: a backend added there is tested here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_accounts_store import BACKENDS, SCHEMAS

from ragserve.config import StoreSettings
from ragserve.errors import Conflict, NotFoundError
from ragserve.store import Store, open_store
from ragserve.store.accounts import AccountStore, UserRecord


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


@pytest.fixture
def accounts(open_one: Callable[[], Store]) -> AccountStore:
    return open_one().accounts


def user(username: str, tenant: str = "acme", created_at: str = "") -> UserRecord:
    return UserRecord(username, tenant, f"scrypt$hash-{username}", ("read", "write"), created_at)


def test_create_then_get_returns_the_record(accounts: AccountStore) -> None:
    """A stored user reads back field for field, with its times filled in and no failures."""
    accounts.create_user(user("alice"))
    found = accounts.get_user("alice")
    assert found is not None
    assert (found.username, found.tenant, found.password_hash, found.scopes) == (
        "alice", "acme", "scrypt$hash-alice", ("read", "write")
    )  # fmt: skip
    assert found.created_at
    assert found.password_changed_at == found.created_at
    assert (found.active, found.failed_logins, found.locked_until) == (True, 0, None)
    assert accounts.get_user("nobody") is None


def test_usernames_are_unique_across_tenants(accounts: AccountStore) -> None:
    """A taken username conflicts even in another tenant, and the first user stays as it was."""
    accounts.create_user(user("alice"))
    with pytest.raises(Conflict, match="alice"):
        accounts.create_user(user("alice", tenant="other"))
    found = accounts.get_user("alice")
    assert found is not None
    assert found.tenant == "acme"


def test_list_filters_by_tenant_in_creation_order(accounts: AccountStore) -> None:
    """Listing one tenant shows only its users, oldest first; no tenant lists every user."""
    accounts.create_user(user("b", created_at="2024-01-02T00:00:00.000+00:00"))
    accounts.create_user(user("a", created_at="2024-01-03T00:00:00.000+00:00"))
    accounts.create_user(user("c", tenant="other", created_at="2024-01-01T00:00:00.000+00:00"))
    assert [u.username for u in accounts.list_users("acme")] == ["b", "a"]
    assert [u.username for u in accounts.list_users()] == ["c", "b", "a"]
    assert accounts.list_users("nobody") == []


def test_set_password_replaces_the_hash_and_lifts_the_lock(accounts: AccountStore) -> None:
    """A new hash is stored with a new change time, and failures and lock are cleared."""
    accounts.create_user(user("alice", created_at="2024-01-01T00:00:00.000+00:00"))
    accounts.record_failed_login("alice", lock_after=1, lock_until="2999-01-01T00:00:00.000+00:00")
    changed = accounts.set_password("alice", "scrypt$new")
    assert changed.password_hash == "scrypt$new"
    assert changed.password_changed_at > "2024-01-01"
    assert (changed.failed_logins, changed.locked_until) == (0, None)
    assert accounts.get_user("alice") == changed
    with pytest.raises(NotFoundError, match="ghost"):
        accounts.set_password("ghost", "scrypt$new")


def test_disable_is_idempotent(accounts: AccountStore) -> None:
    """Disabling sets disabled_at once; disabling again keeps the first time."""
    accounts.create_user(user("alice"))
    first = accounts.disable_user("alice")
    assert first.disabled_at is not None
    assert not first.active
    assert accounts.disable_user("alice").disabled_at == first.disabled_at
    assert accounts.get_user("alice") == first
    with pytest.raises(NotFoundError, match="ghost"):
        accounts.disable_user("ghost")


def test_failed_logins_count_up_to_a_lock(accounts: AccountStore) -> None:
    """Failures count until lock_after, which locks the user and starts the count again."""
    accounts.create_user(user("alice"))
    until = "2999-01-01T00:00:00.000+00:00"
    for expected in (1, 2):
        accounts.record_failed_login("alice", lock_after=3, lock_until=until)
        found = accounts.get_user("alice")
        assert found is not None
        assert (found.failed_logins, found.locked_until) == (expected, None)
    accounts.record_failed_login("alice", lock_after=3, lock_until=until)
    locked = accounts.get_user("alice")
    assert locked is not None
    assert (locked.failed_logins, locked.locked_until) == (0, until)
    assert locked.locked("2998-12-31T23:59:59.999+00:00")
    assert not locked.locked("2999-01-01T00:00:00.000+00:00")


def test_clearing_failures_and_unknown_users(accounts: AccountStore) -> None:
    """A success resets the count; failures of an unknown username change nothing."""
    accounts.create_user(user("alice"))
    accounts.record_failed_login("alice", lock_after=5, lock_until="x")
    accounts.record_failed_login("ghost", lock_after=5, lock_until="x")
    accounts.clear_failed_logins("alice")
    accounts.clear_failed_logins("ghost")
    found = accounts.get_user("alice")
    assert found is not None
    assert found.failed_logins == 0
    assert accounts.get_user("ghost") is None


def test_concurrent_failures_are_all_counted(open_one: Callable[[], Store]) -> None:
    """Two stores on one database (two processes) add to the same count, atomically."""
    first, second = open_one(), open_one()
    first.accounts.create_user(user("alice"))
    for store in (first, second, first, second):
        store.accounts.record_failed_login("alice", lock_after=10, lock_until="x")
    found = second.accounts.get_user("alice")
    assert found is not None
    assert found.failed_logins == 4


def test_users_migration_is_applied_in_order(
    backend: str, store_url: str, open_one: Callable[[], Store]
) -> None:
    """Opening a new database records every migration, m006_users right after m005."""
    open_one()
    helper, every = SCHEMAS[backend]
    assert helper.applied(store_url) == every
    assert every.index("m006_users") == every.index("m005_collection_config") + 1
