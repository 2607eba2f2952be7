"""Passwords: scrypt hashes, the policy, and checking a login without revealing who exists."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragserve.errors import Conflict, InvalidQuery, NotFoundError
from ragserve.security import passwords
from ragserve.security.keys import Principal
from ragserve.security.passwords import (
    change_password,
    check_password,
    create_user,
    hash_password,
    needs_rehash,
    normalize_username,
    verify_password,
    verify_user,
)
from ragserve.store.accounts import AccountStore
from ragserve.store.sqlite import SqliteStore

GOOD = "correct horse battery"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    store = SqliteStore(tmp_path / "users.db")
    yield store.accounts
    store.close()


def test_round_trip_and_wrong_password() -> None:
    """A hash verifies its own password and no other, and never contains the password."""
    encoded = hash_password(GOOD)
    assert GOOD not in encoded
    assert verify_password(GOOD, encoded)
    assert not verify_password(GOOD + "!", encoded)
    assert not verify_password("", encoded)


def test_hashes_are_salted() -> None:
    """The same password hashes differently each time."""
    assert hash_password(GOOD) != hash_password(GOOD)


def test_parameters_are_encoded() -> None:
    """The hash names its algorithm and cost, a 16-byte salt and a 32-byte key."""
    algorithm, n, r, p, salt, key = hash_password(GOOD).split("$")
    assert (algorithm, n, r, p) == ("scrypt", str(2**15), "8", "1")
    assert len(base64.b64decode(salt + "==")) == 16
    assert len(base64.b64decode(key + "=")) == 32


def test_cheaper_hashes_verify_and_need_a_rehash() -> None:
    """A hash with other parameters still verifies, and is flagged for a fresh one."""
    cheap = hash_password(GOOD, n=2**10)
    assert verify_password(GOOD, cheap)
    assert needs_rehash(cheap)
    assert not needs_rehash(hash_password(GOOD))
    assert needs_rehash("not a hash")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h.replace("$8$", "$9$"),  # other block size: another key
        lambda h: h[:-2] + ("AA" if not h.endswith("AA") else "BB"),  # another key
        lambda h: h.replace("scrypt$", "pbkdf2$"),  # unknown algorithm
        lambda h: h.replace(f"${2**15}$", f"${2**40}$"),  # absurd cost: refused, not run
        lambda h: h.replace(f"${2**15}$", "$1000$"),  # n not a power of two
        lambda h: h.rsplit("$", 1)[0] + "$!!!",  # not base64
        lambda h: h.rsplit("$", 1)[0],  # a part missing
        lambda h: "",
    ],
)
def test_tampered_hashes_never_match(tamper: Callable[[str], str]) -> None:
    """A changed or malformed hash fails closed instead of raising or matching."""
    assert not verify_password(GOOD, tamper(hash_password(GOOD)))


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "whitespace"),
        (" " * 20, "whitespace"),
        ("\t\n" * 8, "whitespace"),
        ("short pass1", "at least 12"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_policy_refuses_weak_passwords(password: str, message: str) -> None:
    """Too short, too long or blank passwords are input errors that do not echo them."""
    with pytest.raises(InvalidQuery, match=message) as caught:
        check_password(password)
    assert password.strip() == "" or password not in str(caught.value)


def test_policy_accepts_the_bounds() -> None:
    """12 and 1024 characters are allowed, spaces inside included."""
    assert check_password("a" * 12) == "a" * 12
    assert check_password("x" * 1024) == "x" * 1024
    assert check_password("  spaces in  ") == "  spaces in  "


@pytest.mark.parametrize(("given", "stored"), [("Alice", "alice"), (" bob@x.org ", "bob@x.org")])
def test_usernames_are_trimmed_and_lowercased(given: str, stored: str) -> None:
    """Login names are case-insensitive: they are stored lowercase."""
    assert normalize_username(given) == stored


@pytest.mark.parametrize("name", ["", "a b", "-lead", "x" * 65, "semi;colon"])
def test_malformed_usernames_are_refused(name: str) -> None:
    """A username outside the allowed shape is an input error."""
    with pytest.raises(InvalidQuery, match="invalid username"):
        normalize_username(name)


def test_create_then_verify_gives_the_principal(accounts: AccountStore) -> None:
    """The right password gives the user's tenant and scopes; the stored row has no password."""
    record = create_user(accounts, "Alice", GOOD, tenant="acme", scopes=["write", "read"])
    assert (record.username, record.tenant, record.scopes) == ("alice", "acme", ("read", "write"))
    assert GOOD not in record.password_hash
    principal = verify_user(accounts, "ALICE", GOOD)
    assert principal == Principal("acme", "user:alice", frozenset({"read", "write"}))
    assert verify_user(accounts, "alice", GOOD + "x") is None


def test_create_checks_inputs_and_taken_names(accounts: AccountStore) -> None:
    """Weak passwords, bad tenants and scopes are refused; a taken name conflicts across tenants."""
    with pytest.raises(InvalidQuery, match="too short"):
        create_user(accounts, "alice", "short", tenant="acme", scopes=["read"])
    with pytest.raises(InvalidQuery, match="tenant"):
        create_user(accounts, "alice", GOOD, tenant="a b", scopes=["read"])
    with pytest.raises(InvalidQuery, match="scope"):
        create_user(accounts, "alice", GOOD, tenant="acme", scopes=["root"])
    create_user(accounts, "alice", GOOD, tenant="acme", scopes=["read"])
    with pytest.raises(Conflict, match="alice"):
        create_user(accounts, "alice", GOOD, tenant="other", scopes=["read"])


def test_unknown_disabled_and_malformed_users_get_none(accounts: AccountStore) -> None:
    """Unknown, malformed and disabled usernames all answer None, never an error."""
    create_user(accounts, "alice", GOOD, tenant="acme", scopes=["read"])
    assert verify_user(accounts, "nobody", GOOD) is None
    assert verify_user(accounts, "not a name!", GOOD) is None
    accounts.disable_user("alice")
    assert verify_user(accounts, "alice", GOOD) is None


def test_unknown_users_cost_a_hash_too(
    accounts: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown username runs scrypt with the current cost, like a wrong password does."""
    create_user(accounts, "alice", GOOD, tenant="acme", scopes=["read"])
    costs: list[int] = []
    derive = passwords._derive

    def counting(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
        costs.append(n)
        return derive(password, salt, n, r, p, length)

    monkeypatch.setattr(passwords, "_derive", counting)
    verify_user(accounts, "nobody", GOOD)
    verify_user(accounts, "alice", "wrong password!")
    assert costs == [2**15, 2**15]


def test_repeated_failures_lock_until_a_password_change(accounts: AccountStore) -> None:
    """After lock_after wrong passwords even the right one fails; a new password lifts the lock."""
    create_user(accounts, "alice", GOOD, tenant="acme", scopes=["read"])
    for _ in range(3):
        assert verify_user(accounts, "alice", "wrong password!", lock_after=3) is None
    record = accounts.get_user("alice")
    assert record is not None
    assert record.locked_until is not None
    assert verify_user(accounts, "alice", GOOD, lock_after=3) is None
    change_password(accounts, "alice", "a brand new password")
    assert verify_user(accounts, "alice", "a brand new password") is not None


def test_success_clears_the_failure_count(accounts: AccountStore) -> None:
    """Failures short of the limit are forgotten after a successful login."""
    create_user(accounts, "alice", GOOD, tenant="acme", scopes=["read"])
    verify_user(accounts, "alice", "wrong password!")
    assert verify_user(accounts, "alice", GOOD) is not None
    record = accounts.get_user("alice")
    assert record is not None
    assert record.failed_logins == 0


def test_login_upgrades_an_old_hash(accounts: AccountStore) -> None:
    """A hash below the current cost is replaced on the next successful login."""
    create_user(accounts, "alice", GOOD, tenant="acme", scopes=["read"])
    accounts.set_password("alice", hash_password(GOOD, n=2**10))
    assert verify_user(accounts, "alice", GOOD) is not None
    record = accounts.get_user("alice")
    assert record is not None
    assert not needs_rehash(record.password_hash)


def test_change_password_of_unknown_user_is_not_found(accounts: AccountStore) -> None:
    """Setting a password needs an existing user."""
    with pytest.raises(NotFoundError, match="ghost"):
        change_password(accounts, "ghost", GOOD)
