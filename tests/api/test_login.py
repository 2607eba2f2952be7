"""Signing in with a username and password over real HTTP: a session key that works like an
API key, says it is a session, ends on sign-out; failures say nothing about which part was
wrong and are rate-limited per username, even for the right password while blocked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_server import ApiServer, start_api_server

from ragserve.security.passwords import create_user

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    env = {"RAGSERVE_SECURITY__LOGIN_RATE": "3/minute"}
    with start_api_server(tmp_path_factory.mktemp("login"), model_cache, env) as s:
        yield s


@pytest.fixture
def user(server: ApiServer) -> tuple[str, str]:
    """A fresh username of a fresh tenant, with read and write scopes."""
    name, tenant = f"ada-{uuid.uuid4().hex[:8]}", f"people-{uuid.uuid4().hex[:8]}"
    store = server.open_store()
    try:
        create_user(store.accounts, name, PASSWORD, tenant=tenant, scopes=["read", "write"])
    finally:
        store.close()
    return name, tenant


def login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/v1/auth/login", json={"username": username, "password": password})


def test_a_session_works_like_a_key_until_signed_out(
    server: ApiServer, user: tuple[str, str]
) -> None:
    name, tenant = user
    with server.client() as anonymous:
        response = login(anonymous, name.upper(), PASSWORD)  # usernames are case-insensitive
    assert response.status_code == 200, response.text
    session = response.json()
    assert (session["tenant"], session["scopes"]) == (tenant, ["read", "write"])
    assert session["token"].startswith("rsk_")
    with server.client(session["token"]) as client:
        me = client.get("/v1/auth/me").json()
        assert (me["tenant"], me["session"]) == (tenant, True)
        assert me["expires_at"] == session["expires_at"]
        created = client.post("/v1/collections", json={"name": "notes"})
        assert created.status_code == 201, created.text
        assert client.get("/v1/keys").status_code == 403  # no admin scope
        assert client.post("/v1/auth/logout").status_code == 204
        refused = client.get("/v1/collections")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"


def test_signing_out_with_an_api_key_leaves_the_key_working(server: ApiServer) -> None:
    key = server.key(f"keys-{uuid.uuid4().hex[:8]}")
    with server.client(key) as client:
        assert client.get("/v1/auth/me").json()["session"] is False
        assert client.post("/v1/auth/logout").status_code == 204
        assert client.get("/v1/collections").status_code == 200


def test_failures_are_alike_and_limited_per_username(
    server: ApiServer, user: tuple[str, str]
) -> None:
    name, _ = user
    with server.client() as anonymous:
        wrong = login(anonymous, name, "not the password at all")
        unknown = login(anonymous, f"nobody-{uuid.uuid4().hex[:6]}", PASSWORD)
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()  # nothing tells whether the username exists
        login(anonymous, name, "not the password either")
        third = login(anonymous, name, "still not the password")
        assert third.status_code == 401  # the 3rd failure fills the 3/minute window
        blocked = login(anonymous, name, PASSWORD)  # the right password, too late
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert "token" not in blocked.text


def test_a_malformed_login_is_a_422_and_needs_no_key(server: ApiServer) -> None:
    with server.client() as anonymous:
        response = anonymous.post("/v1/auth/login", json={"username": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
