"""LLM tokens per tenant: ``max_tokens`` clamped to the tenant's maximum, the daily token
quota charged with what the model used, and a tenant override, on a real llama.cpp model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from api_server import ApiServer, start_api_server

QUESTION = {"question": "Who discovered the moon Zarnak?", "collection": "moons"}
DOCUMENT = {"source": "zarnak", "text": "The moon Zarnak was discovered by Ilse Varga in 1911."}


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """llama.cpp answers; every tenant may sample 4 tokens per answer and 400 tokens a day,
    except tenant "roomy", allowed 12 per answer. No query cache: a cached answer would use
    no tokens, and the test asks one question until the quota is spent."""
    env = {
        "RAGSERVE_CACHE__ENABLED": "false",
        "RAGSERVE_LLM__PROVIDER": "llamacpp",
        "RAGSERVE_SECURITY__MAX_TOKENS": "4",
        "RAGSERVE_SECURITY__TOKENS_PER_DAY": "400",
        "RAGSERVE_SECURITY__TENANTS": json.dumps({"roomy": {"max_tokens": 12}}),
    }
    with start_api_server(tmp_path_factory.mktemp("tokens"), model_cache, env) as server:
        yield server


@contextmanager
def _client(server: ApiServer, tenant: str) -> Iterator[httpx.Client]:
    """A client for ``tenant``, whose collection holds the one document."""
    with server.client(server.key(tenant)) as client:
        added = client.post("/v1/collections/moons/documents/text", json={"documents": [DOCUMENT]})
        assert added.status_code == 200, added.text
        yield client


@pytest.mark.llm
def test_max_tokens_is_clamped_to_the_tenant_maximum(llm_server: ApiServer) -> None:
    """Asking for 200 completion tokens gets at most the tenant's 4 (or its override's 12)."""
    with _client(llm_server, "tight") as tight, _client(llm_server, "roomy") as roomy:
        small = tight.post("/v1/query", json={**QUESTION, "max_tokens": 200})
        large = roomy.post("/v1/query", json={**QUESTION, "max_tokens": 200})
    assert small.status_code == 200, small.text
    assert large.status_code == 200, large.text
    assert 0 < small.json()["usage"]["completion_tokens"] <= 4
    assert 4 < large.json()["usage"]["completion_tokens"] <= 12


@pytest.mark.llm
def test_the_daily_token_quota_is_charged_and_then_refuses(llm_server: ApiServer) -> None:
    """Tokens used are charged to the day's quota; once it is spent, questions get a 429."""
    used = 0
    with _client(llm_server, "spender") as client:
        for _ in range(20):
            response = client.post("/v1/query", json=QUESTION)
            if response.status_code == 429:
                break
            assert response.status_code == 200, response.text
            used += response.json()["usage"]["total_tokens"]
        usage = client.get("/v1/usage").json()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(response.headers["Retry-After"]) <= 86_400
    assert used >= 400
    assert usage["quota"]["tokens_used"] == used
    assert usage["days"][-1]["prompt_tokens"] + usage["days"][-1]["completion_tokens"] == used
