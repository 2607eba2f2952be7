"""Schemathesis over the whole OpenAPI schema of a live server, authenticated with an admin key.

Every operation gets coverage cases (boundary values) and fuzzed cases, valid and invalid; each
response must be no 5xx, a documented status and content type, and match its schema (event
streams event by event); invalid input must be refused, auth enforced, undeclared methods 405.
Every other valid case is pointed at real resources (a collection, a document, a revocable
key), so the 200 paths are exercised too, not only the 404s random names produce.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx
import hypothesis
import pytest
import schemathesis
from api_server import ApiServer
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.schemas import BaseSchema

TENANT = "fuzz-openapi"
COLLECTION = "fuzz-docs"
SACRIFICE = "fuzz-sacrifice"  # what a DELETE of "a real collection" removes
SEED = 20251123
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
]


@dataclass(frozen=True)
class Resources:
    """Real things in the fuzzer's tenant that generated cases are sometimes pointed at."""

    admin_key: str
    admin_key_id: str
    victim_key_id: str
    document_id: str
    sacrifice_document_id: str


def _key_id(key: str) -> str:
    return key[len("rsk_") : len("rsk_") + 12]


def _add_document(client: httpx.Client, collection: str, source: str) -> str:
    response = client.post(
        f"/v1/collections/{collection}/documents/text",
        json={"documents": [{"source": source, "text": f"{source} holds a fact about fuzzing."}]},
    )
    assert response.status_code == 200, response.text
    document_id: str = response.json()["results"][0]["document_id"]
    return document_id


@pytest.fixture(scope="module")
def resources(api_server: ApiServer) -> Resources:
    """A collection with two documents, a sacrificial collection and a key that may be revoked."""
    admin_key = api_server.create_key(TENANT)
    victim_key = api_server.create_key(TENANT, "read")
    with api_server.client(admin_key) as client:
        document_id = _add_document(client, COLLECTION, "kept.txt")
        sacrifice_document_id = _add_document(client, COLLECTION, "deleted.txt")
        assert client.post("/v1/collections", json={"name": SACRIFICE}).status_code == 201
    return Resources(
        admin_key, _key_id(admin_key), _key_id(victim_key), document_id, sacrifice_document_id
    )


@pytest.fixture(scope="module")
def openapi_schema(api_server: ApiServer, resources: Resources) -> BaseSchema:
    """The live server's schema; generated requests authenticate as the fuzzer's admin key.

    The key goes through Schemathesis' OpenAPI-aware auth, not a raw header, so ``ignored_auth``
    knows it is valid and probes each operation without it and with a wrong one.
    """
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": api_server.url,
            "auth": {"openapi": {"HTTPBearer": {"bearer": resources.admin_key}}},
        }
    )
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", config=config)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's lazy schemas read ``item._nodeid``, which pytest 9.2 renamed."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("openapi_schema")
_cases = itertools.count()  # every other valid case is pointed at real resources


def _point_at_real_resources(case: schemathesis.Case, resources: Resources) -> None:
    """Replace generated path parameters by real ones; DELETEs remove only expendable things."""
    params = case.path_parameters
    if params is None:
        return
    deleting = case.method.upper() == "DELETE"
    if "name" in params:
        params["name"] = SACRIFICE if deleting and "document_id" not in params else COLLECTION
    if "document_id" in params:
        params["document_id"] = (
            resources.sacrifice_document_id if deleting else resources.document_id
        )
    if "key_id" in params:
        params["key_id"] = resources.victim_key_id


@schema.parametrize()
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    database=None,  # the seed alone decides the cases: no replay of earlier runs' failures
    # Each case is an HTTP round trip, and path patterns make Hypothesis filter many draws.
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_the_openapi_schema(
    case: schemathesis.Case, api_server: ApiServer, resources: Resources
) -> None:
    """No generated request gets a 5xx, and every response is documented and matches its schema."""
    positive = case.meta is None or case.meta.generation.mode.is_positive
    if positive and next(_cases) % 2 == 0:
        _point_at_real_resources(case, resources)
    if case.path_parameters and case.path_parameters.get("key_id") == resources.admin_key_id:
        # Revoking the fuzzer's own key would turn every later case into a 401.
        case.path_parameters["key_id"] = resources.victim_key_id
    checks = CHECKS
    if case.path == "/v1/collections/{name}/documents/text":
        # GET .../documents/text is GET .../documents/{document_id} with an invalid id (422),
        # not the 405 that OpenAPI's concrete-path-first matching expects.
        checks = [check for check in CHECKS if check is not unsupported_method]
    case.call_and_validate(checks=checks)
    if case.method.upper() == "PUT" and case.path == "/v1/llm":
        # A tenant LLM at a fuzzed URL makes later questions fail upstream (502/504, not a
        # defect), so the server's own LLM is restored at once.
        with api_server.client(resources.admin_key) as client:
            client.delete("/v1/llm")
