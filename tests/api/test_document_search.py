"""``GET /v1/collections/{name}/documents?q=``: documents found by source or title, over a real
server."""

from __future__ import annotations

import uuid

import httpx
from api_server import ApiServer

DOCUMENTS = [
    ("Report_2024.txt", "Annual report"),
    ("report-2023.txt", "Quarterly figures"),
    ("50%.txt", None),
    ("50x.txt", None),
    ("Été.txt", "Résumé"),
    ("notes.txt", None),
]


def listed(client: httpx.Client, **params: object) -> tuple[list[str], int]:
    response = client.get("/v1/collections/named/documents", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [d["source"] for d in body["documents"]], body["total"]


def test_documents_are_found_by_source_or_title(api_server: ApiServer) -> None:
    """``q`` keeps documents whose source or title contains it, in any case, literally (``%``
    and ``_`` are no wildcards); ``total`` counts the matches and paging applies to them."""
    tenant = f"named-{uuid.uuid4().hex[:10]}"
    with api_server.client(api_server.key(tenant)) as client:
        documents = [
            {"source": source, "title": title, "text": f"The text of {source}."}
            for source, title in DOCUMENTS
        ]
        added = client.post("/v1/collections/named/documents/text", json={"documents": documents})
        assert added.status_code == 200, added.text
        found = {
            q: listed(client, q=q)
            for q in ("REPORT", "quarterly", "50%", "_", "été", "RÉSUMÉ", "nothing")
        }
        page = listed(client, q="report", limit=1, offset=1)
        everything = listed(client)
    assert found == {
        "REPORT": (["Report_2024.txt", "report-2023.txt"], 2),
        "quarterly": (["report-2023.txt"], 1),
        "50%": (["50%.txt"], 1),
        "_": (["Report_2024.txt"], 1),
        "été": (["Été.txt"], 1),
        "RÉSUMÉ": (["Été.txt"], 1),
        "nothing": ([], 0),
    }
    assert page == (["report-2023.txt"], 2)
    assert everything[1] == 6


def test_an_empty_or_overlong_query_is_refused(api_server: ApiServer) -> None:
    """``q`` holds 1 to 200 characters; outside that the request is a 422 in the error shape."""
    tenant = f"named-{uuid.uuid4().hex[:10]}"
    with api_server.client(api_server.key(tenant)) as client:
        assert client.post("/v1/collections", json={"name": "named"}).status_code == 201
        responses = [
            client.get("/v1/collections/named/documents", params={"q": q})
            for q in ("", "x" * 201, "x" * 200)
        ]
    assert [r.status_code for r in responses] == [422, 422, 200]
    assert [r.json()["error"]["code"] for r in responses[:2]] == ["validation_error"] * 2
