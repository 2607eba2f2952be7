"""The UI's pages driven by Streamlit's ``AppTest`` against a real ``ragserve serve``."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from api_server import ApiServer, start_api_server
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button
from ui_data import COLLECTION, TENANT

import ragserve.ui.app
from ragserve.security.passwords import create_user
from ragserve.ui.views.login import WRONG_PASSWORD

APP = str(Path(ragserve.ui.app.__file__))
PASSWORD = "a long enough password"
QUESTION = "How long is the orbital period of the moon Zarnak?"


def open_app(monkeypatch: pytest.MonkeyPatch, api_url: str) -> AppTest:
    monkeypatch.setenv("RAGSERVE_UI__API_URL", api_url)
    at = AppTest.from_file(APP, default_timeout=60)
    return at.run()


def sign_in(at: AppTest, key: str) -> AppTest:
    at.text_input[0].input(key)
    return button(at, "Sign in").click().run()


def button(at: AppTest, label: str) -> Button:
    return next(b for b in at.button if b.label == label)


def chat_page(api_url: str, key: str) -> None:
    """The chat page alone, as ``AppTest.from_function`` runs it (imports inside on purpose)."""
    from ragserve.ui.client import ApiClient
    from ragserve.ui.views import chat

    with ApiClient(api_url, key) as client:
        chat.render(client)


def collection_names(server: ApiServer, key: str) -> list[str]:
    with server.client(key) as client:
        return [c["name"] for c in client.get("/v1/collections").json()["collections"]]


def test_signing_in_shows_the_collections(
    monkeypatch: pytest.MonkeyPatch, ui_server: ApiServer, ui_key: str
) -> None:
    """A valid key opens the collections page with the tenant's collection and its counts."""
    at = sign_in(open_app(monkeypatch, ui_server.url), ui_key)
    table = at.dataframe[0].value
    row = table[table["collection"] == COLLECTION].iloc[0]
    assert (
        [e.value for e in at.exception],
        at.header[0].value,
        row["documents"],
    ) == ([], "Collections", 1)


def test_an_invalid_key_is_refused_kindly(
    monkeypatch: pytest.MonkeyPatch, ui_server: ApiServer
) -> None:
    """A wrong key leaves the sign-in page with the friendly 401 message."""
    at = sign_in(open_app(monkeypatch, ui_server.url), "rsk_not-a-real-key")
    expected = ["Your key was not accepted. Check it, or ask your administrator for a new one."]
    assert expected == [e.value for e in at.error]
    assert "api_key" not in at.session_state


def test_sign_out_forgets_the_key(
    monkeypatch: pytest.MonkeyPatch, ui_server: ApiServer, ui_key: str
) -> None:
    """Signing out clears the session and shows the sign-in form again."""
    at = sign_in(open_app(monkeypatch, ui_server.url), ui_key)
    at = button(at, "Sign out").click().run()
    labels = [b.label for b in at.button]
    assert ("api_key" in at.session_state, labels) == (False, ["Sign in", "Sign in with password"])


def test_a_person_signs_in_with_a_password_and_signing_out_ends_the_session(
    monkeypatch: pytest.MonkeyPatch, ui_server: ApiServer
) -> None:
    """Username and password give a session key; signing out revokes it at the API."""
    name = f"ui-{uuid.uuid4().hex[:8]}"
    store = ui_server.open_store()
    try:
        create_user(store.accounts, name, PASSWORD, tenant=TENANT, scopes=["read"])
    finally:
        store.close()
    at = open_app(monkeypatch, ui_server.url)
    at.text_input[1].input(name)
    at.text_input[2].input("not the right password")
    at = button(at, "Sign in with password").click().run()
    assert [e.value for e in at.error] == [WRONG_PASSWORD]
    at.text_input[2].input(PASSWORD)
    at = button(at, "Sign in with password").click().run()
    assert ([e.value for e in at.exception], at.header[0].value) == ([], "Collections")
    token = at.session_state["api_key"]
    with ui_server.client(token) as client:
        assert client.get("/v1/auth/me").json()["session"] is True
    at = button(at, "Sign out").click().run()
    with ui_server.client(token) as client:
        assert client.get("/v1/collections").status_code == 401


def test_create_then_delete_after_confirming(
    monkeypatch: pytest.MonkeyPatch, ui_server: ApiServer, ui_key: str
) -> None:
    """A new collection appears; Delete asks first, and only the confirmation deletes it."""
    at = sign_in(open_app(monkeypatch, ui_server.url), ui_key)
    at.text_input[0].input("scratch")
    at = button(at, "Create").click().run()
    assert [s.value for s in at.success] == ["Collection scratch created."]
    assert "scratch" in collection_names(ui_server, ui_key)

    at.selectbox[0].select("scratch")
    at = button(at, "Delete…").click().run()
    assert "Delete scratch with its 0 documents" in at.warning[0].value
    assert "scratch" in collection_names(ui_server, ui_key)

    at = button(at, "Yes, delete").click().run()
    assert [s.value for s in at.success] == ["Collection scratch deleted."]
    assert "scratch" not in collection_names(ui_server, ui_key)


def test_chat_streams_a_cited_answer_with_feedback_and_regenerate(
    ui_server: ApiServer, ui_key: str
) -> None:
    """An answer cites [1] with its source listed; thumbs up is recorded; regenerate answers
    again."""
    at = AppTest.from_function(
        chat_page, kwargs={"api_url": ui_server.url, "key": ui_key}, default_timeout=60
    ).run()
    at.selectbox[0].select(COLLECTION)
    at = at.chat_input[0].set_value(QUESTION).run()
    assert [e.value for e in at.exception] == []
    user, assistant = at.chat_message
    assert user.markdown[0].value == QUESTION
    assert "[1]" in assistant.markdown[0].value
    source = next(b for b in at.button if b.label.startswith("[1] Zarnak"))
    assert "41 days" in source.help

    at = button(at, ":material/thumb_up:").click().run()
    assert [s.value for s in at.success] == ["Thanks — your feedback was recorded."]

    at = button(at, "Regenerate").click().run()
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert "[1]" in at.chat_message[1].markdown[0].value


def test_api_down_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    """With nothing listening at the API URL, signing in says the API is not reachable."""
    url = f"http://127.0.0.1:{closed_port}"
    at = sign_in(open_app(monkeypatch, url), "rsk_anything")
    assert [e.value for e in at.exception] == []
    assert at.error[0].value.startswith(f"The ragserve API at {url} is not reachable")


def test_rate_limited_shows_the_retry_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_cache: Path
) -> None:
    """Past the key's rate limit, the page says when to try again."""
    env = {"RAGSERVE_SECURITY__RATE_LIMIT": "2/minute"}
    with start_api_server(tmp_path, model_cache, env) as server:
        at = sign_in(open_app(monkeypatch, server.url), server.key(TENANT))
        for _ in range(3):  # sign-in used one or two requests; the third is refused
            if at.error:
                break
            at = at.run()
    assert [e.value for e in at.exception] == []
    assert re.fullmatch(r"Too many requests — try again in \d+ s\.", at.error[0].value)
