"""A session ended behind the UI's back, a used-up daily quota, and the admin insight into
experiments and evaluation runs, driven by ``AppTest`` against a real ``ragserve serve``."""

from __future__ import annotations

import base64
import re
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from api_server import ApiServer, start_api_server
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button
from ui_data import COLLECTION, DOCUMENT, TENANT

import ragserve.ui.app
from ragserve.security.passwords import create_user
from ragserve.store.experiments import EvalRunRecord

APP = str(Path(ragserve.ui.app.__file__))
PASSWORD = "a long enough password"
QUESTION = "How long is the orbital period of the moon Zarnak?"
SESSION_ENDED = "Your session has ended. Sign in again."
QUOTA_USED_UP = re.compile(
    r"Your quota is used up: daily question quota of 1 reached; resets at \d\d:\d\d UTC "
    r"\(in (?:(\d+) h )?(\d+) min\)\.|Your quota is used up: daily question quota of 1 "
    r"reached; resets at \d\d:\d\d UTC \(in less than a minute\)\."
)
MIN_QUESTIONS = 6
MAX_QUESTIONS = 60  # assignment hashes the user: both variants are all but certain long before


def button(at: AppTest, label: str) -> Button:
    return next(b for b in at.button if b.label == label)


def chat_page(api_url: str, key: str) -> None:
    """The chat page alone, as ``AppTest.from_function`` runs it (imports inside on purpose)."""
    from ragserve.ui.client import ApiClient
    from ragserve.ui.views import chat

    with ApiClient(api_url, key) as client:
        chat.render(client)


def insights_page(api_url: str, key: str, is_admin: bool) -> None:
    from ragserve.ui.client import ApiClient
    from ragserve.ui.views import insights

    with ApiClient(api_url, key) as client:
        insights.render(client, is_admin=is_admin)


def add_document(client: httpx.Client, collection: str) -> None:
    response = client.post(
        f"/v1/collections/{collection}/documents/text",
        json={"documents": [{"source": "zarnak.txt", "title": "Zarnak", "text": DOCUMENT}]},
    )
    assert response.status_code == 200, response.text


# ---- sessions -------------------------------------------------------------------------------


def test_a_session_ended_at_the_api_returns_to_sign_in_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, ui_server: ApiServer
) -> None:
    """Signed in with a password, the session is ended at the API behind the UI's back: the
    next run forgets the key and the sign-in page says why, once."""
    name = f"ui-{uuid.uuid4().hex[:8]}"
    store = ui_server.open_store()
    try:
        create_user(store.accounts, name, PASSWORD, tenant=TENANT, scopes=["read"])
    finally:
        store.close()
    monkeypatch.setenv("RAGSERVE_UI__API_URL", ui_server.url)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[1].input(name)
    at.text_input[2].input(PASSWORD)
    at = button(at, "Sign in with password").click().run()
    assert ([e.value for e in at.exception], at.header[0].value) == ([], "Collections")
    token = at.session_state["api_key"]

    with ui_server.client(token) as client:
        assert client.post("/v1/auth/logout").status_code == 204
        assert client.get("/v1/auth/me").status_code == 401

    at = at.run()
    assert [e.value for e in at.exception] == []
    assert [w.value for w in at.warning] == [SESSION_ENDED]
    assert "api_key" not in at.session_state
    assert [b.label for b in at.button] == ["Sign in", "Sign in with password"]
    at = at.run()  # the notice is shown once
    assert ([w.value for w in at.warning], "api_key" in at.session_state) == ([], False)


# ---- quota ----------------------------------------------------------------------------------


def test_a_used_up_daily_quota_is_a_clear_message_in_the_chat(
    tmp_path: Path, model_cache: Path
) -> None:
    """With one question a day, the first is answered and the second gets the friendly quota
    message (with the time until it resets) in its assistant turn, not a traceback."""
    env = {
        "RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute",
        "RAGSERVE_SECURITY__QUESTIONS_PER_DAY": "1",
    }
    with start_api_server(tmp_path, model_cache, env) as server:
        key = server.key(TENANT)
        with server.client(key) as client:
            add_document(client, COLLECTION)
        at = AppTest.from_function(
            chat_page, kwargs={"api_url": server.url, "key": key}, default_timeout=60
        ).run()
        at.selectbox[0].select(COLLECTION)
        at = at.chat_input[0].set_value(QUESTION).run()
        assert [e.value for e in at.exception] == []
        assert [m.name for m in at.chat_message] == ["user", "assistant"]
        assert "[1]" in at.chat_message[1].markdown[0].value

        at = at.chat_input[0].set_value(QUESTION).run()
        with server.client(key) as client:
            quota = client.get("/v1/usage").json()["quota"]
    assert [e.value for e in at.exception] == []
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    refused = at.chat_message[3]
    assert [e.value for e in refused.error] == [e.value for e in at.error]
    (message,) = [e.value for e in refused.error]
    matched = QUOTA_USED_UP.fullmatch(message)
    assert matched, message
    hours, minutes = (int(part or 0) for part in matched.groups())
    assert hours * 60 + minutes <= 24 * 60
    assert (quota["questions_used"], quota["questions_limit"]) == (1, 1)


# ---- admin insight: experiments and evaluation runs ------------------------------------------


def test_admin_insight_shows_the_running_experiment_and_a_stored_evaluation_run(
    ui_server: ApiServer,
) -> None:
    """An experiment between two configurations, answered for several users, is listed as
    running with both variants; each variant's answers are counted; a stored evaluation run
    is listed with its label and ndcg@10."""
    tenant = f"insight-{uuid.uuid4().hex[:8]}"
    experiment_name = f"mode-{uuid.uuid4().hex[:6]}"
    key = ui_server.key(tenant)
    with ui_server.client(key) as client:
        add_document(client, COLLECTION)
        for name, config in (("control", {}), ("lexical", {"retrieve": {"mode": "bm25"}})):
            response = client.put(f"/v1/configs/{name}", json={"config": config})
            assert response.status_code == 200, response.text
        created = client.post(
            "/v1/experiments",
            json={
                "name": experiment_name,
                "collection": COLLECTION,
                "variants": [
                    {"name": "a", "config": "control", "share": 0.5},
                    {"name": "b", "config": "lexical", "share": 0.5},
                ],
            },
        )
        assert created.status_code == 201, created.text
        experiment_id = created.json()["id"]
        started = client.post(f"/v1/experiments/{experiment_id}/start")
        assert started.status_code == 200, started.text

        answered: Counter[str] = Counter()
        while sum(answered.values()) < MIN_QUESTIONS or len(answered) < 2:
            assert sum(answered.values()) < MAX_QUESTIONS, f"one variant only: {answered}"
            response = client.post(
                "/v1/query",
                json={"collection": COLLECTION, "question": QUESTION},
                headers={"X-Ragserve-User": f"user-{sum(answered.values())}"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["experiment"] == experiment_id
            answered[response.json()["variant"]] += 1
        report = client.get(f"/v1/experiments/{experiment_id}/report")

    run = EvalRunRecord(
        id=uuid.uuid4().hex,
        tenant=tenant,
        kind="beir",
        dataset="scifact",
        dataset_fingerprint="00112233aabbccdd",
        config_hash="cc" * 8,
        config={"retrieve": {"mode": "bm25"}},
        metrics={"ndcg@10": 0.7125, "recall@100": 0.9},
        per_query={f"q{i}": {"ndcg@10": 0.7125} for i in range(4)},
        timing={"query_seconds": 1.0},
        label="bm25-baseline",
    )
    store = ui_server.open_store()
    try:
        store.experiments.put_eval_run(run)
    finally:
        store.close()

    at = AppTest.from_function(
        insights_page,
        kwargs={"api_url": ui_server.url, "key": key, "is_admin": True},
        default_timeout=120,
    ).run()
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []
    tabs = {t.label: t for t in at.tabs}

    experiments = tabs["Experiments"].dataframe[0].value
    (listed,) = experiments.to_dict("records")
    assert listed == {
        "experiment": experiment_name,
        "collection": COLLECTION,
        "state": "running",
        "variants": "a (control@1), b (lexical@1)",
        "winner": "",
        "started": started.json()["started_at"],
    }
    shown = {m.label: m.value for m in tabs["Experiments"].metric}
    assert shown == {
        "a (control@1)": f"{answered['a']} answers",
        "b (lexical@1)": f"{answered['b']} answers",
    }
    # one question per user: each variant has as many users as answers
    assert [m.delta for m in tabs["Experiments"].metric] == [
        f"{answered['a']} users",
        f"{answered['b']} users",
    ]
    assert sum(int(v.split()[0]) for v in shown.values()) == sum(answered.values())

    runs = tabs["Evaluation runs"].dataframe[0].value
    assert runs[["run", "label", "dataset", "ndcg@10", "recall@100"]].to_dict("records") == [
        {
            "run": run.id[:10],
            "label": "bm25-baseline",
            "dataset": "scifact",
            "ndcg@10": 0.7125,
            "recall@100": 0.9,
        }
    ]

    # st.iframe reaches AppTest as an unknown "iframe" element; the report is a data: URL.
    reports = [report_of(frame.proto.src) for frame in at.get("iframe")]
    assert len(reports) == 2  # the experiment's and the evaluation run's
    assert experiment_name in reports[0]
    assert reports[0].count('src="data:image/png;base64,') >= 1
    assert "bm25-baseline" in reports[1]
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")


def report_of(src: str) -> str:
    """The HTML inside a ``data:text/html;base64,…`` URL."""
    prefix = "data:text/html;base64,"
    assert src.startswith(prefix), src[:40]
    return base64.b64decode(src[len(prefix) :]).decode()
