"""``ragserve keys`` and ``ragserve serve`` settings, run as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_cli import run

from ragserve.config import SecuritySettings, ServerSettings
from ragserve.errors import Unauthenticated
from ragserve.security.keys import ApiKeys
from ragserve.store.sqlite import SqliteStore


def test_keys_create_list_revoke(tmp_path: Path, model_cache: Path) -> None:
    """A created key is printed once and works; the listing never shows it; revoking stops it."""
    created = run(tmp_path, model_cache, "keys", "create", "--tenant", "acme", "--scopes", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rsk_")
    assert "shown only this once" in created.stderr

    listed = run(tmp_path, model_cache, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert (record["tenant"], record["scopes"], record["revoked_at"]) == ("acme", ["read"], None)
    assert key not in listed.stdout
    assert record["key_hash"] is None

    store = SqliteStore(tmp_path / "ragserve.db")
    try:
        assert ApiKeys(store.accounts).authenticate(key).tenant == "acme"
        revoked = run(tmp_path, model_cache, "keys", "revoke", record["key_id"])
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(Unauthenticated):
            ApiKeys(store.accounts).authenticate(key)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "create", "--tenant", "acme", "--scopes", "root"), "unknown scope"),
        (("keys", "create", "--tenant", "a b", "--scopes", "read"), "invalid tenant name"),
        (("keys", "revoke", "nosuchkey123"), "key"),
        (("serve", "--host", "0.0.0.0", "--no-auth"), "loopback"),
    ],
)
def test_bad_key_and_serve_arguments_are_refused(
    tmp_path: Path, model_cache: Path, args: tuple[str, ...], message: str
) -> None:
    """Bad input is one line on stderr and exit code 2, never a traceback or a server."""
    result = run(tmp_path, model_cache, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_auth_off_needs_a_loopback_host() -> None:
    """server.auth = false is accepted on loopback only."""
    assert not ServerSettings(auth=False, host="127.0.0.1").auth
    with pytest.raises(ValidationError, match="loopback"):
        ServerSettings(auth=False, host="0.0.0.0")


@pytest.mark.parametrize("secret", ["changeme", "short-secret", "x" * 31])
def test_placeholder_or_short_secrets_are_refused(secret: str) -> None:
    """The secret that encrypts tenants' LLM keys must be a real one."""
    with pytest.raises(ValidationError, match="at least 32"):
        SecuritySettings(secret_key=secret)
