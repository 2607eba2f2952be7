"""Bring-your-own LLM: a tenant's own OpenAI-compatible server answers its questions, and its
key is stored encrypted, never returned and never logged."""

from __future__ import annotations

from api_server import ApiServer

SECRET = "sk-byo-test-0b1c2d3e4f5a6b7c8d9e"


def _ask(server: ApiServer, key: str, collection: str) -> dict[str, object]:
    with server.client(key) as client:
        response = client.post(
            "/v1/query",
            json={"question": "Which river flows through Quillon?", "collection": collection},
        )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_tenant_llm_answers_for_that_tenant_only(
    api_server: ApiServer, llama_server: str
) -> None:
    """After PUT /v1/llm the tenant's answers come from its server; other tenants keep the
    server's generator; DELETE restores it."""
    own, other = api_server.key("byo-a"), api_server.key("byo-b")
    doc = {"source": "quillon", "text": "The river Esk flows through the town of Quillon."}
    for key in (own, other):
        with api_server.client(key) as client:
            added = client.post("/v1/collections/geo/documents/text", json={"documents": [doc]})
            assert added.status_code == 200, added.text

    with api_server.client(own) as client:
        put = client.put(
            "/v1/llm", json={"base_url": llama_server, "model": "smol", "api_key": SECRET}
        )
        shown = client.get("/v1/llm")
    assert put.status_code == 200, put.text
    assert shown.json() == {**put.json(), "api_key_set": True}
    assert SECRET not in put.text + shown.text

    assert str(_ask(api_server, own, "geo")["model"]).startswith(f"openai:{llama_server}")
    assert _ask(api_server, other, "geo")["model"] == "extractive"

    with api_server.client(own) as client:
        assert client.delete("/v1/llm").status_code == 204
        assert client.get("/v1/llm").status_code == 404
    assert _ask(api_server, own, "geo")["model"] == "extractive"


def test_the_tenant_key_is_encrypted_at_rest_and_absent_from_logs(
    api_server: ApiServer, llama_server: str
) -> None:
    """The store holds a ciphertext, not the key (nor do the SQLite file and its WAL); the
    server's log never shows it."""
    key = api_server.key("byo-c")
    with api_server.client(key) as client:
        response = client.put(
            "/v1/llm", json={"base_url": llama_server, "model": "smol", "api_key": SECRET}
        )
    assert response.status_code == 200, response.text
    store = api_server.open_store()
    try:
        record = store.accounts.get_tenant_llm("byo-c")
    finally:
        store.close()
    assert record is not None
    assert record.api_key_encrypted
    assert SECRET not in record.api_key_encrypted
    for path in api_server.data_dir.glob("ragserve.db*"):  # SQLite: the database and its WAL
        assert SECRET.encode() not in path.read_bytes()
    assert all(SECRET not in line for line in api_server.logs())


def test_a_follow_up_is_made_to_stand_alone(api_server: ApiServer) -> None:
    """A pronoun-led follow-up retrieves with the earlier question's terms and says so."""
    key = api_server.key("followup")
    docs = [
        {"source": "esk", "text": "The river Esk is 36 kilometres long and rises on the moors."},
        {"source": "bread", "text": "Sourdough bread rises slowly because of wild yeast."},
    ]
    with api_server.client(key) as client:
        assert (
            client.post("/v1/collections/c/documents/text", json={"documents": docs}).status_code
            == 200
        )
        response = client.post(
            "/v1/query",
            json={
                "question": "How long is it?",
                "collection": "c",
                "history": [
                    {"role": "user", "content": "Tell me about the river Esk."},
                    {"role": "assistant", "content": "It rises on the moors [1]."},
                ],
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "esk" in body["standalone_question"].lower()
    assert body["sources"][0]["source"] == "esk"
    assert "36 kilometres" in body["answer"]
