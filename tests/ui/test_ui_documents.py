"""The documents page (upload with per-file outcomes, search, delete), the insight page and a
citation's page text, driven by ``AppTest`` against a real ``ragserve serve``."""

from __future__ import annotations

import uuid
from pathlib import Path

from api_server import ApiServer, start_api_server
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button
from ui_data import COLLECTION, TENANT

PDFS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pdfs"
PDF = "application/pdf"
QUESTION = "How long is the orbital period of the moon Zarnak?"


def documents_page(api_url: str, key: str, can_write: bool) -> None:
    """The documents page alone (``AppTest.from_function`` runs it; imports inside on purpose)."""
    from ragserve.ui.client import ApiClient
    from ragserve.ui.views import documents

    with ApiClient(api_url, key) as client:
        documents.render(client, can_write=can_write)


def insights_page(api_url: str, key: str, is_admin: bool) -> None:
    from ragserve.ui.client import ApiClient
    from ragserve.ui.views import insights

    with ApiClient(api_url, key) as client:
        insights.render(client, is_admin=is_admin)


def chat_page(api_url: str, key: str) -> None:
    from ragserve.ui.client import ApiClient
    from ragserve.ui.views import chat

    with ApiClient(api_url, key) as client:
        chat.render(client)


def page(function: object, **kwargs: object) -> AppTest:
    return AppTest.from_function(function, kwargs=kwargs, default_timeout=120).run()  # type: ignore[arg-type]


def button(at: AppTest, label: str) -> Button:
    return next(b for b in at.button if b.label == label)


def fresh_collection(server: ApiServer, key: str) -> str:
    name = f"docs-{uuid.uuid4().hex[:8]}"
    with server.client(key) as client:
        assert client.post("/v1/collections", json={"name": name}).status_code == 201
    return name


def test_an_upload_reports_each_file_and_one_failure_never_stops_the_rest(
    tmp_path: Path, model_cache: Path
) -> None:
    """A PDF and a Markdown file are indexed; the encrypted PDF, the file over the size limit
    and the unsupported one each get their own reason; the list shows the two new documents."""
    env = {"RAGSERVE_SERVER__MAX_UPLOAD_BYTES": str(200_000)}
    with start_api_server(tmp_path, model_cache, env) as server:
        key = server.key(TENANT)
        collection = fresh_collection(server, key)
        at = page(documents_page, api_url=server.url, key=key, can_write=True)
        at.selectbox[0].select(collection)
        at = at.run()
        at.file_uploader[0].set_value(
            [
                ("paper.pdf", (PDFS / "pdflatex-4-pages.pdf").read_bytes(), PDF),
                ("locked.pdf", (PDFS / "libreoffice-writer-password.pdf").read_bytes(), PDF),
                ("big.pdf", (PDFS / "amt_handbook_sample.pdf").read_bytes(), PDF),
                ("tool.bin", bytes(range(256)) * 8, "application/octet-stream"),
                ("notes.md", b"# Notes\n\nThe launch window opens on 3 March.\n", "text/markdown"),
            ]
        )  # fmt: skip
        at = button(at.run(), "Upload and index").click().run()
        assert [e.value for e in at.exception] == []
        successes = sorted(s.value for s in at.success)
        errors = {e.value.split("**")[1]: e.value for e in at.error}
        assert [s.split("**")[1] for s in successes] == ["notes.md", "paper.pdf"]
        assert all("— indexed (" in s for s in successes)
        assert sorted(errors) == ["big.pdf", "locked.pdf", "tool.bin"]
        assert "encrypted" in errors["locked.pdf"]
        assert "limit" in errors["big.pdf"]
        assert "supported types are PDF" in errors["tool.bin"]
        assert at.caption[0].value == "5 files: 2 indexed, 3 failed"
        assert sorted(at.dataframe[0].value["source"]) == ["notes.md", "paper.pdf"]


def test_search_narrows_the_list_and_delete_asks_first(ui_server: ApiServer, ui_key: str) -> None:
    key = ui_key
    collection = fresh_collection(ui_server, key)
    with ui_server.client(key) as client:
        documents = [
            {"source": f"{name}.txt", "text": f"{name} is a report about orbits."}
            for name in ("alpha-report", "beta-report", "gamma-memo")
        ]
        response = client.post(
            f"/v1/collections/{collection}/documents/text", json={"documents": documents}
        )
        assert response.status_code == 200, response.text
    at = page(documents_page, api_url=ui_server.url, key=key, can_write=True)
    at.selectbox[0].select(collection)
    at = at.run()
    assert len(at.dataframe[0].value) == 3
    at.text_input[0].input("REPORT")
    at = at.run()
    assert sorted(at.dataframe[0].value["source"]) == ["alpha-report.txt", "beta-report.txt"]

    chosen = at.selectbox[1].value  # the first document listed: alpha-report.txt
    at = button(at, "Delete…").click().run()
    assert at.warning[0].value.startswith("Delete alpha-report.txt")
    at = button(at, "Yes, delete").click().run()
    assert [s.value for s in at.success] == ["alpha-report.txt deleted."]
    with ui_server.client(key) as client:
        listed = client.get(f"/v1/collections/{collection}/documents").json()["documents"]
    assert sorted(d["source"] for d in listed) == ["beta-report.txt", "gamma-memo.txt"]
    assert chosen is not None
    assert at.download_button[0].label.startswith("Download ")


def test_a_reader_sees_no_upload_or_delete(ui_server: ApiServer) -> None:
    reader = ui_server.key(TENANT, scopes="read")
    at = page(documents_page, api_url=ui_server.url, key=reader, can_write=False)
    at.selectbox[0].select(COLLECTION)
    at = at.run()
    assert (len(at.file_uploader), [b.label for b in at.button]) == (0, [])
    assert len(at.dataframe[0].value) >= 1


def test_a_citation_opens_its_page_with_the_passage_marked(
    ui_server: ApiServer, ui_key: str
) -> None:
    at = page(chat_page, api_url=ui_server.url, key=ui_key)
    at.selectbox[0].select(COLLECTION)
    at = at.chat_input[0].set_value(QUESTION).run()
    assert [e.value for e in at.exception] == []
    source = next(b for b in at.button if b.label.startswith("[1] Zarnak"))
    at = source.click().run()
    html = "".join(h.proto.body for h in at.get("html"))
    assert "<mark data-testid='cited-passage'>" in html
    assert "41 days" in html
    assert any(b.label == "Download zarnak.txt" for b in at.download_button)


def test_insights_show_usage_to_everyone_and_operations_to_admins(
    ui_server: ApiServer, ui_key: str
) -> None:
    with ui_server.client(ui_key) as client:
        body = {"collection": COLLECTION, "question": QUESTION}
        assert client.post("/v1/query", json=body).status_code == 200
    reader = ui_server.key(TENANT, scopes="read")
    at = page(insights_page, api_url=ui_server.url, key=reader, is_admin=False)
    assert [e.value for e in at.exception] == []
    assert [m.label for m in at.metric] == ["Questions today", "LLM tokens today"]
    assert len(at.tabs) == 0
    assert int(at.metric[0].value.replace(",", "")) >= 1

    at = page(insights_page, api_url=ui_server.url, key=ui_key, is_admin=True)
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []
    assert [t.label for t in at.tabs] == [
        "Answers and latency", "Cache", "Jobs", "Experiments", "Evaluation runs",
    ]  # fmt: skip
    labels = [m.label for m in at.metric]
    assert {"Answers", "Cache hit rate", "Abstained", "Queued", "Running", "Failed"} <= set(labels)
    stages = at.dataframe[0].value
    assert "total" in list(stages["stage"])
