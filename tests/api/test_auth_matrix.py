"""The auth matrix: every endpoint x every kind of caller gets the expected status, 100%.

The endpoints are checked against the live server's ``/openapi.json``: a route added without an
entry in ``ENDPOINTS`` fails ``test_matrix_covers_every_route``. Each case runs against fresh
tenants (``authz-a-<hex>`` owns the resources, ``authz-b-<hex>`` is the other tenant), so no
case depends on another's side effects (a deleted collection, a revoked key).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from api_server import ApiServer

from ragserve.store.experiments import EvalRunRecord
from ragserve.types import JobRecord

Scope = Literal["read", "write", "admin"]
# "resource": addresses one of the owner's collections, documents or keys (others get 404);
# "create": names a collection to create or fill (others get their own, in their namespace);
# "tenant": acts on the caller's own tenant (others get 200 with their own data only).
Reach = Literal["resource", "create", "tenant"]
CallerKind = Literal["none", "garbage", "truncated", "scheme", "flipped", "revoked", "other", "key"]
IMPLIED: dict[str, set[str]] = {
    "read": {"read"},
    "write": {"read", "write"},
    "admin": {"read", "write", "admin"},
}
ERROR_CODES = {401: "unauthenticated", 403: "forbidden"}
PUBLIC = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc")
PUBLIC_POSTS = {("POST", "/v1/auth/login")}  # the body is the credential (test_login.py)
UNLISTED = {"/openapi.json", "/docs", "/redoc"}  # served by FastAPI itself, not in the schema


def key_id(key: str) -> str:
    """The public id inside a ``rsk_`` key."""
    return key[4:16]


@dataclass(frozen=True)
class Call:
    """One HTTP request, without credentials: ``content`` holds httpx's json= or files=."""

    method: str
    path: str
    content: dict[str, Any]

    def mentions(self) -> str:
        return self.path + repr(self.content)


@dataclass
class Tenant:
    """A fresh tenant that creates, on first use, what an endpoint's request needs."""

    server: ApiServer
    name: str
    tag: str
    admin_key: str
    client: httpx.Client  # shared, without credentials: creating one costs ~80 ms
    key_ids: list[str] = field(default_factory=list)
    document: str | None = None
    experiment: str | None = None
    answer: str | None = None

    @property
    def marker(self) -> str:
        return f"zq{self.tag}"

    @property
    def collection_name(self) -> str:
        return f"docs-{self.tag}"

    @property
    def spare(self) -> str:
        """A collection name that only create routes use."""
        return f"spare-{self.tag}"

    @property
    def source(self) -> str:
        return f"note-{self.tag}.txt"

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request with the tenant's admin key."""
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return self.client.request(method, path, headers=headers, **kwargs)

    def collection(self) -> str:
        """The tenant's collection, holding one text document with the tenant's marker."""
        self.document_id()
        return self.collection_name

    def document_id(self) -> str:
        if self.document is None:
            text = f"The lighthouse log {self.marker} records the tide at dawn."
            doc = {"source": self.source, "title": f"Log {self.marker}", "text": text}
            response = self.send(
                "POST",
                f"/v1/collections/{self.collection_name}/documents/text",
                json={"documents": [doc]},
            )
            assert response.status_code == 200, response.text
            self.document = response.json()["results"][0]["document_id"]
        assert self.document is not None
        return self.document

    def job_id(self) -> str:
        """A question job of the tenant's, still queued: written to the store as an API
        replica writes it, but handed to no worker (the server picks up only jobs queued for
        jobs.requeue_after_s), so it can still be cancelled."""
        job = JobRecord(
            uuid.uuid4().hex,
            self.name,
            "query",
            self.collection(),
            payload={"question": f"When is the tide in {self.marker}?"},
        )
        store = self.server.open_store()
        try:
            store.jobs.create([job])
        finally:
            store.close()
        return job.id

    @property
    def config_name(self) -> str:
        return f"cfg-{self.tag}"

    def config(self) -> str:
        """A stored configuration of the tenant's (top_k 3: the collection's index fits)."""
        body = {"config": {"retrieve": {"top_k": 3}}}
        response = self.send("PUT", f"/v1/configs/{self.config_name}", json=body)
        assert response.status_code == 200, response.text
        return self.config_name

    def experiment_id(self) -> str:
        """A draft experiment on the tenant's collection: its configuration against the
        server's own."""
        if self.experiment is None:
            response = self.send("POST", "/v1/experiments", json=self.experiment_body())
            assert response.status_code == 201, response.text
            self.experiment = response.json()["id"]
        assert self.experiment is not None
        return self.experiment

    def experiment_body(self) -> dict[str, Any]:
        base = f"base-{self.tag}"
        assert self.send("PUT", f"/v1/configs/{base}", json={}).status_code == 200
        variants = [
            {"name": "a", "config": base, "share": 0.5},
            {"name": "b", "config": self.config(), "share": 0.5},
        ]
        return {"name": f"exp-{self.tag}", "collection": self.collection(), "variants": variants}

    def start_experiment(self) -> None:
        response = self.send("POST", f"/v1/experiments/{self.experiment_id()}/start")
        assert response.status_code == 200, response.text

    def run_id(self) -> str:
        """A stored evaluation run of the tenant's, written as ``ragserve eval`` writes it."""
        run = EvalRunRecord(
            id=uuid.uuid4().hex,
            tenant=self.name,
            kind="beir",
            dataset=f"set-{self.tag}",
            dataset_fingerprint="0123456789abcdef",
            config_hash="fedcba9876543210",
            config={},
            metrics={"ndcg@10": 0.5},
            per_query={"q1": {"ndcg@10": 0.5}, "q2": {"ndcg@10": 0.5}},
            timing={"seconds": 1.0},
            label=f"run-{self.tag}",
        )
        store = self.server.open_store()
        try:
            store.experiments.put_eval_run(run)
        finally:
            store.close()
        return run.id

    def pause_experiment(self) -> None:
        self.start_experiment()
        response = self.send("POST", f"/v1/experiments/{self.experiment_id()}/pause")
        assert response.status_code == 200, response.text

    def answer_id(self) -> str:
        if self.answer is None:
            response = self.send("POST", "/v1/query", json=_query(self)["json"])
            assert response.status_code == 200, response.text
            self.answer = response.json()["answer_id"]
        assert self.answer is not None
        return self.answer

    def new_key(self, scopes: str) -> str:
        key = self.server.create_key(self.name, scopes)
        self.key_ids.append(key_id(key))
        return key

    def revoked_key(self) -> str:
        """A key with every scope, revoked through the API by the tenant's admin."""
        key = self.new_key("read,write,admin")
        response = self.send("DELETE", f"/v1/keys/{key_id(key)}")
        assert response.status_code == 200, response.text
        assert response.json()["revoked_at"] is not None
        return key

    def throwaway_key_id(self) -> str:
        return key_id(self.new_key("read"))

    def create_spare(self) -> None:
        response = self.send("POST", "/v1/collections", json={"name": self.spare})
        assert response.status_code == 201, response.text

    @property
    def llm_model(self) -> str:
        return f"model-{self.tag}"

    def set_llm(self) -> None:
        llm = {"base_url": f"http://127.0.0.1:9/{self.tag}/v1", "model": self.llm_model}
        response = self.send("PUT", "/v1/llm", json=llm)
        assert response.status_code == 200, response.text

    def identifiers(self) -> set[str]:
        """Strings only this tenant's data contains."""
        names = {self.name, self.marker, self.source, self.collection_name, self.spare}
        names |= {self.llm_model, self.config_name, f"exp-{self.tag}", f"set-{self.tag}"}
        names |= {v for v in (self.experiment, self.answer) if v}
        return names | set(self.key_ids) | ({self.document} if self.document else set())

    def snapshot(self) -> dict[str, Any]:
        """What another caller must not change: collections (their versions rise on every
        change), keys, usage with quotas, and the tenant's LLM."""
        llm = self.send("GET", "/v1/llm")
        return {
            "collections": self.send("GET", "/v1/collections").json(),
            "keys": self.send("GET", "/v1/keys").json(),
            "usage": self.send("GET", "/v1/usage").json(),
            "llm": (llm.status_code, llm.json()),
        }


Content = Callable[[Tenant], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """A protected route: the scope it needs, its success status and a valid request."""

    method: str
    path: str
    scope: Scope
    success: int
    reach: Reach
    content: Content = lambda t: {}
    prepare: Callable[[Tenant], None] = lambda t: None  # state the request acts on

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def call(self, t: Tenant) -> Call:
        """A valid request on the tenant's resources; path parameters are filled lazily."""
        self.prepare(t)
        values: dict[str, Callable[[], str]] = {
            "name": lambda: t.spare if self.reach == "create" else t.collection(),
            "document_id": t.document_id,
            "key_id": t.throwaway_key_id,
            "job_id": t.job_id,
            "config": t.config,
            "experiment": t.experiment_id,
            "answer_id": t.answer_id,
            "run_id": t.run_id,
            "page": lambda: "1",
        }
        path = re.sub(r"\{(\w+)\}", lambda match: values[match[1]](), self.path)
        return Call(self.method, path, self.content(t))


def _new_collection(t: Tenant) -> dict[str, Any]:
    return {"json": {"name": t.spare}}


def _upload(t: Tenant) -> dict[str, Any]:
    return {"files": [("files", (f"upload-{t.tag}.txt", b"The bell rings at noon.", "text/plain"))]}


def _text(t: Tenant) -> dict[str, Any]:
    doc = {"source": f"text-{t.tag}.txt", "text": "The harbour bell rings at noon."}
    return {"json": {"documents": [doc]}}


def _query(t: Tenant) -> dict[str, Any]:
    return {"json": {"question": "When is the tide?", "collection": t.collection()}}


def _search(t: Tenant) -> dict[str, Any]:
    return {"json": {"query": "tide", "collection": t.collection()}}


COLLECTION = "/v1/collections/{name}"
CONFIG = "/v1/configs/{config}"
EXPERIMENT = "/v1/experiments/{experiment}"
STARTED, PAUSED = Tenant.start_experiment, Tenant.pause_experiment
DOCUMENT = "/v1/collections/{name}/documents/{document_id}"
LLM = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
ENDPOINTS = (
    Endpoint("POST", "/v1/collections", "write", 201, "create", _new_collection),
    Endpoint("GET", "/v1/collections", "read", 200, "tenant"),
    Endpoint("GET", COLLECTION, "read", 200, "resource"),
    Endpoint("DELETE", COLLECTION, "write", 204, "resource"),
    Endpoint("POST", f"{COLLECTION}/documents", "write", 202, "create", _upload),
    Endpoint("POST", f"{COLLECTION}/documents/text", "write", 200, "create", _text),
    Endpoint("GET", f"{COLLECTION}/documents", "read", 200, "resource"),
    Endpoint("GET", DOCUMENT, "read", 200, "resource"),
    Endpoint("GET", f"{DOCUMENT}/original", "read", 200, "resource"),
    Endpoint("GET", f"{DOCUMENT}/pages/{{page}}", "read", 200, "resource"),
    Endpoint("POST", f"{DOCUMENT}/reingest", "write", 200, "resource"),
    Endpoint("DELETE", DOCUMENT, "write", 204, "resource"),
    Endpoint("POST", "/v1/query", "read", 200, "resource", _query),
    Endpoint("POST", "/v1/query/async", "read", 202, "resource", _query),
    Endpoint("GET", "/v1/jobs", "read", 200, "tenant"),
    Endpoint("GET", "/v1/jobs/{job_id}", "read", 200, "resource"),
    Endpoint("POST", "/v1/jobs/{job_id}/cancel", "write", 200, "resource"),
    Endpoint("POST", "/v1/search", "read", 200, "resource", _search),
    Endpoint("POST", "/v1/keys", "admin", 201, "tenant", lambda t: {"json": {"scopes": ["read"]}}),
    Endpoint("GET", "/v1/keys", "admin", 200, "tenant"),
    Endpoint("DELETE", "/v1/keys/{key_id}", "admin", 200, "resource"),
    Endpoint("GET", "/v1/usage", "read", 200, "tenant"),
    Endpoint("GET", "/v1/llm", "admin", 200, "tenant", prepare=Tenant.set_llm),
    Endpoint("PUT", "/v1/llm", "admin", 200, "tenant", lambda t: {"json": LLM}),
    Endpoint("DELETE", "/v1/llm", "admin", 204, "tenant", prepare=Tenant.set_llm),
    Endpoint("GET", "/v1/cache/stats", "admin", 200, "tenant"),
    Endpoint("DELETE", "/v1/cache", "admin", 200, "tenant"),
    Endpoint("GET", "/v1/stats/answers", "admin", 200, "tenant"),
    Endpoint("GET", "/v1/configs", "admin", 200, "tenant"),
    Endpoint("PUT", CONFIG, "admin", 200, "create", lambda t: {"json": {"config": {}}}),
    Endpoint("GET", CONFIG, "admin", 200, "resource"),
    Endpoint("GET", f"{CONFIG}/versions", "admin", 200, "resource"),
    Endpoint("GET", f"{COLLECTION}/config", "read", 200, "resource"),
    Endpoint(
        "PUT", f"{COLLECTION}/config", "admin", 200, "resource",
        lambda t: {"json": {"config": t.config()}},
    ),
    Endpoint(
        "POST", "/v1/experiments", "admin", 201, "resource",
        lambda t: {"json": t.experiment_body()},
    ),
    Endpoint("GET", "/v1/experiments", "admin", 200, "tenant"),
    Endpoint("GET", EXPERIMENT, "admin", 200, "resource"),
    Endpoint("POST", f"{EXPERIMENT}/start", "admin", 200, "resource"),
    Endpoint("POST", f"{EXPERIMENT}/pause", "admin", 200, "resource", prepare=STARTED),
    Endpoint("POST", f"{EXPERIMENT}/resume", "admin", 200, "resource", prepare=PAUSED),
    Endpoint("POST", f"{EXPERIMENT}/stop", "admin", 200, "resource", prepare=STARTED),
    Endpoint(
        "POST", f"{EXPERIMENT}/promote", "admin", 200, "resource",
        lambda t: {"json": {"variant": "b"}}, prepare=STARTED,
    ),
    Endpoint("GET", f"{EXPERIMENT}/analysis", "admin", 200, "resource"),
    Endpoint("GET", f"{EXPERIMENT}/report", "admin", 200, "resource"),
    Endpoint("POST", "/v1/auth/logout", "read", 204, "tenant"),
    Endpoint("GET", "/v1/auth/me", "read", 200, "tenant"),
    Endpoint("GET", "/v1/eval/runs", "admin", 200, "tenant"),
    Endpoint("GET", "/v1/eval/runs/{run_id}", "admin", 200, "resource"),
    Endpoint("GET", "/v1/eval/runs/{run_id}/report", "admin", 200, "resource"),
    Endpoint(
        "POST", "/v1/answers/{answer_id}/feedback", "read", 201, "resource",
        lambda t: {"json": {"thumbs": "up"}},
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Caller:
    """Who sends the request: how the key is obtained and in which header it travels."""

    label: str
    kind: CallerKind
    scope: Scope | None = None
    header: Literal["Authorization", "X-API-Key"] = "Authorization"

    def __str__(self) -> str:
        return self.label


CALLERS = (
    Caller("no key", "none"),
    Caller("malformed key", "garbage"),
    Caller("Basic scheme", "scheme"),
    Caller("one char flipped", "flipped"),
    Caller("revoked", "revoked"),
    Caller("other tenant", "other"),
    Caller("read-only key", "key", "read"),
    Caller("write key", "key", "write"),
    Caller("admin key", "key", "admin"),
    Caller("X-API-Key truncated", "truncated", header="X-API-Key"),
    Caller("X-API-Key revoked", "revoked", header="X-API-Key"),
    Caller("X-API-Key read-only", "key", "read", header="X-API-Key"),
    Caller("X-API-Key admin", "key", "admin", header="X-API-Key"),
)
CASES = [pytest.param(e, c, id=f"{e} x {c}") for e in ENDPOINTS for c in CALLERS]


def expected_status(endpoint: Endpoint, caller: Caller) -> int:
    if caller.kind == "other":
        return 404 if endpoint.reach == "resource" else endpoint.success
    if caller.kind != "key":
        return 401
    assert caller.scope is not None
    return endpoint.success if endpoint.scope in IMPLIED[caller.scope] else 403


def flipped(key: str) -> str:
    """The key with one character of its secret changed: well-formed, but not a key."""
    position = len(key) - 10
    replacement = "A" if key[position] != "A" else "B"
    return key[:position] + replacement + key[position + 1 :]


def credentials(caller: Caller, owner: Tenant, other: Tenant | None) -> dict[str, str]:
    """The headers the caller sends; keys are created (or revoked) for this case."""
    match caller.kind:
        case "none":
            return {}
        case "scheme":  # a valid key, but not as a Bearer token
            return {"Authorization": f"Basic {owner.admin_key}"}
        case "garbage":
            key = "rsk_nope"
        case "truncated":
            key = owner.admin_key[:-1]
        case "flipped":
            key = flipped(owner.admin_key)
        case "revoked":
            key = owner.revoked_key()
        case "other":
            assert other is not None
            key = other.admin_key
        case "key":
            assert caller.scope is not None
            key = owner.new_key(caller.scope)
    return (
        {"X-API-Key": key} if caller.header == "X-API-Key" else {"Authorization": f"Bearer {key}"}
    )


def assert_error(response: httpx.Response, status: int) -> None:
    """The one error shape, with the code the status calls for."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) <= {"code", "message", "details"}
    code, message = body["error"]["code"], body["error"]["message"]
    assert isinstance(message, str)
    assert isinstance(code, str)
    if status == 404:
        assert code.endswith("not_found")
    else:
        assert code == ERROR_CODES[status]


def tenant_fields(value: Any) -> Iterator[str]:
    """Every ``tenant`` value anywhere in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "tenant":
                yield item
            yield from tenant_fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from tenant_fields(item)


@pytest.fixture(scope="module")
def bare(api_server: ApiServer) -> Iterator[httpx.Client]:
    """A client that sends no credentials unless a request adds them."""
    with api_server.client() as client:
        yield client


@pytest.fixture
def make_tenant(api_server: ApiServer, bare: httpx.Client) -> Callable[[str], Tenant]:
    """A factory of fresh tenants, each with an admin key."""

    def make(role: str) -> Tenant:
        tag = uuid.uuid4().hex[:12]
        name = f"authz-{role}-{tag}"
        key = api_server.create_key(name)
        return Tenant(api_server, name, tag, key, bare, [key_id(key)])

    return make


def test_matrix_covers_every_route(bare: httpx.Client) -> None:
    """The schema's routes are exactly the matrix's endpoints plus the public ones."""
    paths = bare.get("/openapi.json").json()["paths"]
    actual = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    public = {("GET", path) for path in PUBLIC if path not in UNLISTED} | PUBLIC_POSTS
    assert actual == {(e.method, e.path) for e in ENDPOINTS} | public


def test_schema_declares_credentials_on_exactly_the_protected_routes(bare: httpx.Client) -> None:
    """Protected operations document the Bearer and X-API-Key schemes; public ones none."""
    paths = bare.get("/openapi.json").json()["paths"]
    secured = {
        (method.upper(), path): sorted(name for entry in op.get("security", []) for name in entry)
        for path, operations in paths.items()
        for method, op in operations.items()
    }
    expected = {(e.method, e.path): ["APIKeyHeader", "HTTPBearer"] for e in ENDPOINTS}
    expected |= {("GET", path): [] for path in PUBLIC if path not in UNLISTED}
    expected |= {operation: [] for operation in PUBLIC_POSTS}
    assert secured == expected


@pytest.mark.parametrize("path", PUBLIC)
def test_public_route_answers_without_a_key(bare: httpx.Client, path: str) -> None:
    """Health, readiness, metrics and the API docs need no key (readyz: the server is healthy)."""
    assert bare.get(path).status_code == 200


def arrange(
    make_tenant: Callable[[str], Tenant], endpoint: Endpoint, caller: Caller
) -> tuple[Tenant, Tenant | None, Call, dict[str, str]]:
    """The owner, the other tenant (for that caller), the request and its headers."""
    owner = make_tenant("a")
    call = endpoint.call(owner)
    other = make_tenant("b") if caller.kind == "other" else None
    if other is not None:  # the other tenant has data of its own in every tenant-wide route
        other.create_spare()
        other.set_llm()
        if endpoint.reach == "create":  # the name exists in the owner's namespace only
            owner.create_spare()
    return owner, other, call, credentials(caller, owner, other)


def assert_nothing_of(owner: Tenant, call: Call, response: httpx.Response) -> None:
    """The response names nothing of the owner's that the request did not name itself."""
    mentioned = {s for s in owner.identifiers() if s in call.mentions()}
    leaked = {s for s in owner.identifiers() if s in response.text} - mentioned
    assert leaked == set()


@pytest.mark.parametrize(("endpoint", "caller"), CASES)
def test_auth_matrix(
    bare: httpx.Client, make_tenant: Callable[[str], Tenant], endpoint: Endpoint, caller: Caller
) -> None:
    """The endpoint answers the caller with the expected status and never leaks the owner."""
    owner, other, call, headers = arrange(make_tenant, endpoint, caller)
    expected = expected_status(endpoint, caller)
    # A refused request that could write, or any request of the other tenant, changes nothing.
    untouched = other is not None or (expected >= 400 and endpoint.method != "GET")
    before = owner.snapshot() if untouched else None

    response = bare.request(call.method, call.path, headers=headers, **call.content)

    assert response.status_code == expected, response.text
    if expected >= 400:
        assert_error(response, expected)
    if untouched:
        assert owner.snapshot() == before
    if other is not None:
        assert_nothing_of(owner, call, response)
        if endpoint.reach == "tenant" and response.content:
            assert set(tenant_fields(response.json())) <= {other.name}
