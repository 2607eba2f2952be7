"""``GET /v1/collections/{name}/documents/{id}/pages/{page}``: the text of a cited page, with
its chunks' offsets, over a real server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from api_server import ApiServer

from ragserve.types import Chunk

PDF = "pdflatex-4-pages.pdf"
NOTE = "  The harbour bell rings at noon.\n\nShips  leave the harbour at dawn.\n"


def fresh_tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def stored_chunks(server: ApiServer, tenant: str, collection: str, document_id: str) -> list[Chunk]:
    """The document's chunks as the server stored them (their full texts)."""
    store = server.open_store()
    try:
        return store.document_chunks(tenant, collection, document_id)
    finally:
        store.close()


def add_note(client: httpx.Client, collection: str, source: str = "harbour-note") -> str:
    document = {"source": source, "title": "Harbour", "text": NOTE}
    response = client.post(
        f"/v1/collections/{collection}/documents/text", json={"documents": [document]}
    )
    assert response.status_code == 200, response.text
    document_id: str = response.json()["results"][0]["document_id"]
    return document_id


def error_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_every_pdf_page_is_exact_and_places_its_chunks(
    api_server: ApiServer, shared_pdfs: Path
) -> None:
    """Each page of an uploaded PDF is its extracted text (exact), its passages are its chunks
    in ordinal order at their offsets, and search results point into those pages."""
    tenant = fresh_tenant("pages")
    with api_server.client(api_server.key(tenant)) as client:
        pdf = (shared_pdfs / PDF).read_bytes()
        upload = client.post(
            "/v1/collections/papers/documents",
            params={"wait": "true"},
            files=[("files", (PDF, pdf, "application/pdf"))],
        )
        assert upload.status_code == 200, upload.text
        document_id = upload.json()["results"][0]["document_id"]
        base = f"/v1/collections/papers/documents/{document_id}/pages"
        pages: list[dict[str, Any]] = [client.get(f"{base}/{n}").json() for n in range(1, 5)]
        search = client.post("/v1/search", json={"query": "theorem", "collection": "papers"})
    chunks = stored_chunks(api_server, tenant, "papers", document_id)
    assert [(n, 4, True, PDF) for n in range(1, 5)] == [
        (p["page"], p["page_count"], p["exact"], p["source"]) for p in pages
    ]
    for page in pages:
        on_page = [c for c in chunks if c.page == page["page"]]
        expected = [
            {"chunk_id": c.id, "ordinal": c.ordinal, "start": c.start, "end": c.end}
            for c in on_page
        ]
        assert expected == page["passages"]
        assert [c.text for c in on_page] == [
            page["text"][p["start"] : p["end"]] for p in page["passages"]
        ]
    assert len(chunks) == sum(len(p["passages"]) for p in pages)
    results = search.json()["results"]
    assert results
    for result in results:
        text = pages[result["page"] - 1]["text"]
        assert text[result["start"] : result["end"]].startswith(result["snippet"])


def test_a_text_document_page_is_its_text(api_server: ApiServer) -> None:
    """A document given as text has one page: its text stripped, exactly as indexed."""
    tenant = fresh_tenant("pages")
    with api_server.client(api_server.key(tenant)) as client:
        document_id = add_note(client, "notes")
        response = client.get(f"/v1/collections/notes/documents/{document_id}/pages/1")
    assert response.status_code == 200, response.text
    body = response.json()
    chunks = stored_chunks(api_server, tenant, "notes", document_id)
    assert {
        "document_id": document_id,
        "source": "harbour-note",
        "title": "Harbour",
        "mime_type": "text/plain",
        "page": 1,
        "page_count": 1,
        "text": NOTE.strip(),
        "exact": True,
        "passages": [
            {"chunk_id": c.id, "ordinal": c.ordinal, "start": c.start, "end": c.end} for c in chunks
        ],
    } == body
    assert [c.text for c in chunks] == [body["text"][c.start : c.end] for c in chunks]


def test_missing_pages_documents_and_other_tenants_are_not_found(api_server: ApiServer) -> None:
    """Page 0, a negative page and one past page_count are page_not_found; an unknown
    document is document_not_found; another tenant finds neither collection nor document
    (even with a collection of the same name); a page that is no number is a 422."""
    owner, other = fresh_tenant("pages"), fresh_tenant("pages-other")
    with api_server.client(api_server.key(owner)) as client:
        document_id = add_note(client, "shared-name")
        base = "/v1/collections/shared-name/documents"
        missing_pages = [
            error_code(client.get(f"{base}/{document_id}/pages/{n}")) for n in (0, -1, 2)
        ]
        unknown = error_code(client.get(f"{base}/{'0' * 32}/pages/1"))
        not_a_number = error_code(client.get(f"{base}/{document_id}/pages/one"))
    with api_server.client(api_server.key(other)) as client:
        no_collection = error_code(client.get(f"{base}/{document_id}/pages/1"))
        add_note(client, "shared-name", source="their-note")
        no_document = error_code(client.get(f"{base}/{document_id}/pages/1"))
    assert missing_pages == [(404, "page_not_found")] * 3
    assert unknown == (404, "document_not_found")
    assert not_a_number == (422, "validation_error")
    assert no_collection == (404, "collection_not_found")
    assert no_document == (404, "document_not_found")
