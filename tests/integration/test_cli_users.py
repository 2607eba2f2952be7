"""``ragserve users``, run as real processes: passwords come from stdin, never arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import run

from ragserve.security.passwords import verify_user
from ragserve.store.sqlite import SqliteStore

PASSWORD = "correct horse battery"


def run_with_stdin(
    data_dir: Path, model_cache: Path, stdin: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``run`` with ``stdin`` piped in (not a terminal, so nothing prompts)."""
    env = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(model_cache),
    }
    return subprocess.run(
        [sys.executable, "-m", "ragserve.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def create(tmp_path: Path, model_cache: Path, name: str, password: str = PASSWORD) -> str:
    """Create ``name`` in tenant acme; returns stderr, asserting success."""
    created = run_with_stdin(
        tmp_path, model_cache, password + "\n",
        "users", "create", name, "--tenant", "acme", "--scopes", "read,write", "--password-stdin",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return created.stderr


def test_create_from_stdin_then_log_in(tmp_path: Path, model_cache: Path) -> None:
    """A user created with --password-stdin logs in with that password and prints nothing."""
    told = create(tmp_path, model_cache, "Alice")
    assert "created user 'alice' for tenant 'acme'" in told
    assert PASSWORD not in told
    store = SqliteStore(tmp_path / "ragserve.db")
    try:
        principal = verify_user(store.accounts, "alice", PASSWORD)
        assert principal is not None
        assert (principal.tenant, principal.scopes) == ("acme", frozenset({"read", "write"}))
        assert verify_user(store.accounts, "alice", PASSWORD + "x") is None
    finally:
        store.close()


def test_list_shows_users_but_no_hash(tmp_path: Path, model_cache: Path) -> None:
    """The listing (table and JSON) names users, tenants and scopes, never hashes."""
    create(tmp_path, model_cache, "alice")
    listed = run(tmp_path, model_cache, "users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert (record["username"], record["tenant"], record["scopes"]) == (
        "alice", "acme", ["read", "write"]
    )  # fmt: skip
    assert record["password_hash"] is None
    table = run(tmp_path, model_cache, "users", "list", "--tenant", "acme")
    assert table.returncode == 0, table.stderr
    assert "alice" in table.stdout
    for output in (listed.stdout, table.stdout):
        assert "scrypt" not in output
        assert PASSWORD not in output
    other = run(tmp_path, model_cache, "users", "list", "--tenant", "other", "--json")
    assert json.loads(other.stdout) == []


def test_disable_and_passwd(tmp_path: Path, model_cache: Path) -> None:
    """passwd replaces the password; disable stops the user logging in at all."""
    create(tmp_path, model_cache, "alice")
    changed = run_with_stdin(
        tmp_path, model_cache, "a brand new password\n", "users", "passwd", "alice",
        "--password-stdin",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    store = SqliteStore(tmp_path / "ragserve.db")
    try:
        assert verify_user(store.accounts, "alice", PASSWORD) is None
        assert verify_user(store.accounts, "alice", "a brand new password") is not None
        disabled = run(tmp_path, model_cache, "users", "disable", "alice")
        assert disabled.returncode == 0, disabled.stderr
        assert "disabled user 'alice'" in disabled.stderr
        assert verify_user(store.accounts, "alice", "a brand new password") is None
        listed = run(tmp_path, model_cache, "users", "list", "--json")
        assert json.loads(listed.stdout)[0]["disabled_at"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        ("tiny pw\n", ("create", "bob", "--tenant", "acme", "--scopes", "read"), "too short"),
        ("   " * 8 + "\n", ("create", "bob", "--tenant", "acme", "--scopes", "read"), "whitespace"),
        (PASSWORD, ("create", "bob", "--tenant", "acme", "--scopes", "root"), "unknown scope"),
        (PASSWORD, ("create", "b b", "--tenant", "acme", "--scopes", "read"), "invalid username"),
        (PASSWORD, ("create", "bob", "--tenant", "a b", "--scopes", "read"), "invalid tenant"),
        (PASSWORD, ("passwd", "ghost"), "not found"),
        (PASSWORD, ("disable", "ghost"), "not found"),
    ],
)
def test_bad_input_is_refused(
    tmp_path: Path, model_cache: Path, stdin: str, args: tuple[str, ...], message: str
) -> None:
    """Weak passwords, bad names and unknown users are one stderr line and exit code 2."""
    flags = ("--password-stdin",) if args[0] != "disable" else ()
    result = run_with_stdin(tmp_path, model_cache, stdin, "users", *args, *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert stdin.strip() == "" or stdin.strip() not in result.stderr


def test_duplicate_username_is_refused(tmp_path: Path, model_cache: Path) -> None:
    """A taken username, even for another tenant, exits 2 and keeps the first user."""
    create(tmp_path, model_cache, "alice")
    again = run_with_stdin(
        tmp_path, model_cache, PASSWORD + "\n",
        "users", "create", "ALICE", "--tenant", "other", "--scopes", "read", "--password-stdin",
    )  # fmt: skip
    assert again.returncode == 2, again.stderr
    assert "already exists" in again.stderr
    listed = json.loads(run(tmp_path, model_cache, "users", "list", "--json").stdout)
    assert [(u["username"], u["tenant"]) for u in listed] == [("alice", "acme")]


def test_without_stdin_flag_and_no_terminal_nothing_is_created(
    tmp_path: Path, model_cache: Path
) -> None:
    """With no terminal to prompt on, create asks for --password-stdin instead of hanging."""
    result = run_with_stdin(
        tmp_path, model_cache, PASSWORD + "\n",
        "users", "create", "alice", "--tenant", "acme", "--scopes", "read",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--password-stdin" in result.stderr
    assert json.loads(run(tmp_path, model_cache, "users", "list", "--json").stdout) == []
