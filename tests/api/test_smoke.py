"""The server starts on the embedded defaults and answers about an uploaded file."""

from __future__ import annotations

from api_server import ApiServer


def test_upload_then_query_cites_the_uploaded_file(api_server: ApiServer) -> None:
    """A file uploaded with ?wait=true is indexed, and a question about it cites it."""
    with api_server.client(api_server.key("smoke")) as client:
        text = b"The orbital period of the moon Zarnak is 41 days.\n"
        upload = client.post(
            "/v1/collections/smoke/documents",
            params={"wait": "true"},
            files=[("files", ("zarnak.txt", text, "text/plain"))],
        )
        assert upload.status_code == 200, upload.text
        assert [r["status"] for r in upload.json()["results"]] == ["added"]
        answer = client.post(
            "/v1/query",
            json={"question": "What is the orbital period of Zarnak?", "collection": "smoke"},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "41 days" in body["answer"]
    assert body["sources"][0]["source"] == "zarnak.txt"
    assert body["cached"] is False
    assert set(body["timings"]) >= {"embed", "retrieve", "generate", "total"}
