"""API keys: creation, authentication, revocation, scopes, and what is stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ragserve.errors import Forbidden, InvalidQuery, KeyNotFound, Unauthenticated
from ragserve.security.keys import KEY_PREFIX, ApiKeys, Principal, parse_scopes
from ragserve.store.sqlite import SqliteStore
from ragserve.types import Scope

SECRET_START = len(KEY_PREFIX) + 12


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "keys.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(db_path)
    yield opened
    opened.close()


@pytest.fixture
def keys(store: SqliteStore) -> ApiKeys:
    return ApiKeys(store.accounts)


def flip(key: str, index: int) -> str:
    """``key`` with the character at ``index`` replaced by another one of the same alphabet."""
    swapped = "b" if key[index] == "a" else "a"
    return key[:index] + swapped + key[index + 1 :]


def test_created_key_authenticates_to_its_tenant_and_scopes(keys: ApiKeys) -> None:
    """A new key starts with rsk_, embeds its id, and authenticates as its tenant."""
    key, record = keys.create("acme", ["write", "read", "write"], name="ci")
    assert key.startswith(KEY_PREFIX + record.key_id)
    assert len(record.key_id) == 12
    assert record.key_id.isalnum()
    assert record.key_id == record.key_id.lower()
    assert (record.tenant, record.scopes, record.name) == ("acme", ("read", "write"), "ci")
    assert keys.authenticate(key) == Principal("acme", record.key_id, frozenset({"read", "write"}))


def test_two_keys_differ(keys: ApiKeys) -> None:
    """Each key gets its own id and secret."""
    (first, a), (second, b) = keys.create("acme", ["read"]), keys.create("acme", ["read"])
    assert first != second
    assert a.key_id != b.key_id
    assert first[SECRET_START:] != second[SECRET_START:]


def test_only_a_hash_is_stored(keys: ApiKeys, store: SqliteStore, db_path: Path) -> None:
    """The stored hash is not the key, and the key's secret part appears in no row or file."""
    key, record = keys.create("acme", ["admin"])
    assert record.key_hash != key
    assert len(record.key_hash) == 64
    secret = key[SECRET_START:]
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
    assert rows
    assert not [value for row in rows for value in row if secret in str(value)]
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    assert files
    assert not [p for p in files if secret.encode() in p.read_bytes()]


def test_revoked_key_is_rejected_at_once(db_path: Path, keys: ApiKeys) -> None:
    """Revoking through another store on the file takes effect on the next check."""
    key, record = keys.create("acme", ["read"])
    keys.authenticate(key)
    other = SqliteStore(db_path)
    try:
        ApiKeys(other.accounts).revoke(record.key_id, tenant="acme")
    finally:
        other.close()
    with pytest.raises(Unauthenticated, match="invalid, revoked or expired"):
        keys.authenticate(key)
    assert not keys.list("acme")[0].active


def test_revoking_another_tenants_key_is_not_found(keys: ApiKeys) -> None:
    """A tenant cannot revoke, or learn of, another tenant's key."""
    key, record = keys.create("acme", ["read"])
    with pytest.raises(KeyNotFound):
        keys.revoke(record.key_id, tenant="other")
    assert keys.authenticate(key).tenant == "acme"


def test_list_by_tenant(keys: ApiKeys) -> None:
    """Listing shows one tenant's keys, or every key without a tenant."""
    _, a = keys.create("acme", ["read"])
    _, b = keys.create("other", ["read"])
    assert [k.key_id for k in keys.list("acme")] == [a.key_id]
    assert {k.key_id for k in keys.list()} == {a.key_id, b.key_id}


@pytest.mark.parametrize("presented", [None, ""])
def test_missing_key(keys: ApiKeys, presented: str | None) -> None:
    """No key says how to send one."""
    with pytest.raises(Unauthenticated, match="missing API key"):
        keys.authenticate(presented)


def test_malformed_unknown_and_tampered_keys_are_rejected(keys: ApiKeys) -> None:
    """Wrong shapes are malformed; a well-formed key that is not stored, or whose secret or id
    was altered, is invalid; no message repeats the presented key."""
    key, _ = keys.create("acme", ["read"])
    malformed = [key[:-1], key + "x", "Bearer " + key, key.upper(), "rsk_", "sk-123", key + "\n"]
    invalid = [flip(key, SECRET_START + 5), flip(key, len(key) - 1), flip(key, len(KEY_PREFIX))]
    invalid.append(KEY_PREFIX + "0" * 12 + key[SECRET_START:])
    for presented, message in [(m, "malformed") for m in malformed] + [
        (i, "invalid, revoked or expired") for i in invalid
    ]:
        with pytest.raises(Unauthenticated, match=message) as caught:
            keys.authenticate(presented)
        assert presented not in str(caught.value)
        assert key[SECRET_START:] not in str(caught.value)


@pytest.mark.parametrize(
    ("held", "allowed", "refused"),
    [
        ({"read"}, {"read"}, {"write", "admin"}),
        ({"write"}, {"read", "write"}, {"admin"}),
        ({"admin"}, {"read", "write", "admin"}, set()),
        (set(), set(), {"read", "write", "admin"}),
    ],
)
def test_scope_implication(held: set[Scope], allowed: set[Scope], refused: set[Scope]) -> None:
    """admin implies every scope, write implies read, read implies nothing more."""
    principal = Principal("acme", "k", frozenset(held))
    for scope in allowed:
        principal.require(scope)
    for scope in refused:
        with pytest.raises(Forbidden, match=f"lacks the '{scope}' scope"):
            principal.require(scope)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("read", ("read",)),
        ("write, read", ("read", "write")),
        ("admin,read,admin", ("read", "admin")),
        (" write ,", ("write",)),
    ],
)
def test_parse_scopes(text: str, expected: tuple[Scope, ...]) -> None:
    """Scopes are deduplicated and ordered as SCOPES, ignoring blanks."""
    assert parse_scopes(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "at least one"), (" , ", "at least one"), ("read,root", "'root'"), ("READ", "'READ'")],
)
def test_parse_scopes_refuses(text: str, message: str) -> None:
    """Empty or unknown scopes are input errors naming the problem."""
    with pytest.raises(InvalidQuery, match=message):
        parse_scopes(text)


@pytest.mark.parametrize("tenant", ["", "a" * 65, "a b", "a/b", "é", "x\n"])
def test_create_refuses_bad_tenant_names(keys: ApiKeys, tenant: str) -> None:
    """Tenant names are 1-64 of letters, digits, '-', '_' and '.'."""
    with pytest.raises(InvalidQuery, match="invalid tenant name"):
        keys.create(tenant, ["read"])
    assert keys.list() == []


def test_create_refuses_bad_scopes(keys: ApiKeys) -> None:
    """No key is created without a valid, non-empty scope list."""
    with pytest.raises(InvalidQuery):
        keys.create("acme", [])
    with pytest.raises(InvalidQuery, match="'owner'"):
        keys.create("acme", ["read", "owner"])
    assert keys.list() == []


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiKeys, str]]:
    """One store (module-wide, for Hypothesis) holding one active key."""
    store = SqliteStore(tmp_path_factory.mktemp("keys") / "keys.db")
    keys = ApiKeys(store.accounts)
    key, _ = keys.create("acme", ["read"])
    yield keys, key
    store.close()


def _near_misses(key: str) -> st.SearchStrategy[str]:
    alphabet = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
    index = st.integers(0, len(key) - 1)
    return st.builds(lambda i, c: key[:i] + c + key[i + 1 :], index, alphabet)


@given(data=st.data())
def test_anything_but_an_issued_key_is_rejected(
    issued: tuple[ApiKeys, str], data: st.DataObject
) -> None:
    """Arbitrary text, well-formed random keys and one-character edits of a real key all fail."""
    keys, key = issued
    presented = data.draw(
        st.one_of(
            st.text(),
            st.from_regex(r"rsk_[a-z0-9]{12}[A-Za-z0-9_-]{43}", fullmatch=True),
            _near_misses(key),
        )
    )
    assume(presented != key)
    with pytest.raises(Unauthenticated):
        keys.authenticate(presented)


def test_a_session_key_works_until_it_expires(keys: ApiKeys) -> None:
    """A key created with ``expires_in_s`` authenticates until then, and is refused after."""
    live, record = keys.create("acme", ["read"], name="session:ada", expires_in_s=3600)
    assert record.expires_at is not None
    assert keys.authenticate(live).tenant == "acme"
    expired, _ = keys.create("acme", ["read"], name="session:bob", expires_in_s=-1)
    with pytest.raises(Unauthenticated, match="expired"):
        keys.authenticate(expired)
    listed = {r.name: r for r in keys.list("acme")}
    assert listed["session:ada"].active
    assert not listed["session:bob"].active
    assert listed["session:bob"].revoked_at is None  # expired, not revoked
