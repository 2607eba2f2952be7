"""The HTTP API as the UI needs it: one method per call, every failure an ``ApiError``.

httpx errors and the API's ``{"error": {"code", "message"}}`` bodies are mapped here and only
here, so pages show ``ApiError.friendly()`` and never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal

import httpx

from ragserve.ui.models import (
    Collection,
    Document,
    DocumentPage,
    Done,
    Job,
    Me,
    Original,
    PageText,
    Sources,
    StreamEvent,
    Token,
    UploadResult,
)
from ragserve.ui.sse import parse_events

UNREACHABLE = "unreachable"


class ApiError(Exception):
    """A failed call: ``status`` is None when no HTTP response came back (API down)."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        api_url: str = "",
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.api_url = api_url

    def friendly(self) -> str:
        """What to tell the person using the UI."""
        if self.code == UNREACHABLE:
            return (
                f"The ragserve API at {self.api_url} is not reachable ({self.message}). "
                "Check that it is running and that RAGSERVE_UI__API_URL points to it."
            )
        if self.code == "quota_exceeded":
            wait = f" (in {duration(self.retry_after)})" if self.retry_after else ""
            return f"Your quota is used up: {self.message.rstrip('.')}{wait}."
        if self.status == 401 or self.code == "unauthenticated":
            return "Your key was not accepted. Check it, or ask your administrator for a new one."
        if self.status == 429 or self.code == "rate_limited":
            wait = f"try again in {self.retry_after} s" if self.retry_after else "try again soon"
            return f"Too many requests — {wait}."
        return self.message


def duration(seconds: int) -> str:
    """``51755`` as ``14 h 22 min``; under a minute as ``less than a minute``."""
    hours, minutes = divmod(seconds // 60, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "less than a minute"


def error_of(response: httpx.Response, api_url: str) -> ApiError:
    """The ``ApiError`` for a non-2xx response (tolerates bodies that are not the API's)."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code = f"http_{response.status_code}"
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    retry = response.headers.get("Retry-After", "")
    return ApiError(
        response.status_code,
        code,
        message,
        retry_after=int(retry) if retry.isdigit() else None,
        api_url=api_url,
    )


class ApiClient:
    """A ragserve API at ``base_url`` called with one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 60.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key, self._timeout = api_key, timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    def copy(self) -> ApiClient:
        """A new client with the same API and key, for work done after this one is closed
        (a deferred download runs after the script run that drew its button)."""
        return ApiClient(self.base_url, self._api_key, self._timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- sessions -------------------------------------------------------------------------

    def login(self, username: str, password: str) -> str:
        """A session key for a username and password (``POST /v1/auth/login``)."""
        body = {"username": username, "password": password}
        token: str = self._call("POST", "/v1/auth/login", json=body).json()["token"]
        return token

    def logout(self) -> None:
        """End the session of this client's key (an API key is left working)."""
        self._call("POST", "/v1/auth/logout")

    def me(self) -> Me:
        """Who this client's key is: tenant, scopes, and a session's expiry."""
        return Me.of(self._call("GET", "/v1/auth/me").json())

    # ---- collections and documents --------------------------------------------------------

    def collections(self) -> list[Collection]:
        body = self._call("GET", "/v1/collections").json()
        return [Collection.of(c) for c in body["collections"]]

    def create_collection(self, name: str) -> Collection:
        return Collection.of(self._call("POST", "/v1/collections", json={"name": name}).json())

    def delete_collection(self, name: str) -> None:
        self._call("DELETE", f"/v1/collections/{name}")

    def documents(
        self, collection: str, *, limit: int = 100, offset: int = 0, query: str = ""
    ) -> DocumentPage:
        """A page of the collection's documents; ``query`` keeps names containing it."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if query:
            params["q"] = query
        body = self._call("GET", f"/v1/collections/{collection}/documents", params=params).json()
        return DocumentPage([Document.of(d) for d in body["documents"]], body["total"])

    def delete_document(self, collection: str, document_id: str) -> None:
        self._call("DELETE", f"/v1/collections/{collection}/documents/{document_id}")

    def page_text(self, collection: str, document_id: str, page: int) -> PageText:
        """The text of one page of a document, with where each of its chunks lies."""
        path = f"/v1/collections/{collection}/documents/{document_id}/pages/{page}"
        return PageText.of(self._call("GET", path).json())

    def upload(self, collection: str, files: Sequence[tuple[str, bytes]]) -> list[UploadResult]:
        """Send files for indexing: one result per file, ``accepted`` ones with their job."""
        parts = [("files", (name, data)) for name, data in files]
        response = self._call("POST", f"/v1/collections/{collection}/documents", files=parts)
        return [UploadResult.of(r) for r in response.json()["results"]]

    def job(self, job_id: str) -> Job:
        return Job.of(self._call("GET", f"/v1/jobs/{job_id}").json())

    def jobs(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        """The tenant's jobs, oldest first, optionally of one state."""
        params: dict[str, str | int] = {"limit": limit, **({"state": state} if state else {})}
        return [Job.of(j) for j in self._call("GET", "/v1/jobs", params=params).json()["jobs"]]

    def document_original(self, collection: str, document_id: str) -> Original:
        path = f"/v1/collections/{collection}/documents/{document_id}/original"
        response = self._call("GET", path)
        disposition = response.headers.get("Content-Disposition", "")
        file_name = disposition.partition('filename="')[2].rstrip('"') or document_id
        mime_type = response.headers.get("Content-Type", "application/octet-stream")
        return Original(file_name, mime_type, response.content)

    # ---- questions and feedback ----------------------------------------------------------

    def ask_stream(
        self, collection: str, question: str, history: Sequence[dict[str, str]] = ()
    ) -> Iterator[StreamEvent]:
        """The answer as it is generated: tokens, then its sources, then ``Done``.

        An ``error`` event mid-stream is raised as ``ApiError``, like a failed request.
        """
        body = {
            "collection": collection,
            "question": question,
            "history": list(history),
            "stream": True,
        }
        with self._stream("POST", "/v1/query", json=body) as response:
            for event in parse_events(response.iter_lines()):
                if event.name == "token":
                    yield Token(event.data["text"])
                elif event.name == "sources":
                    yield Sources.of(event.data)
                elif event.name == "done":
                    yield Done.of(event.data)
                elif event.name == "error":
                    error = event.data["error"]
                    raise ApiError(200, error["code"], error["message"], api_url=self.base_url)

    def feedback(
        self,
        answer_id: str,
        *,
        thumbs: Literal["up", "down"] | None = None,
        score: int | None = None,
    ) -> dict[str, Any]:
        """Thumbs or a 1-5 score on an answer (the experiments feedback API)."""
        body = {"thumbs": thumbs} if thumbs is not None else {"score": score}
        response = self._call("POST", f"/v1/answers/{answer_id}/feedback", json=body)
        result: dict[str, Any] = response.json()
        return result

    def usage(self, days: int = 30) -> dict[str, Any]:
        """Usage per day and today's quota for the key's tenant."""
        return self._json("GET", "/v1/usage", params={"days": days})

    # ---- insight (admin) -----------------------------------------------------------------

    def cache_stats(self) -> dict[str, Any]:
        """Hits, misses and hit rate per cache level (of the API process that answers)."""
        return self._json("GET", "/v1/cache/stats")

    def answer_stats(self, *, collection: str | None = None, limit: int = 1000) -> dict[str, Any]:
        """Per-stage latency, cache hits and abstentions over the latest answers."""
        params: dict[str, str | int] = {"limit": limit}
        if collection:
            params["collection"] = collection
        return self._json("GET", "/v1/stats/answers", params=params)

    def experiments(self) -> list[dict[str, Any]]:
        experiments: list[dict[str, Any]] = self._json("GET", "/v1/experiments")["experiments"]
        return experiments

    def experiment_analysis(self, experiment: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/experiments/{experiment}/analysis")

    def experiment_report(self, experiment: str) -> str:
        """The analysis as a self-contained HTML page with its plots."""
        return self._call("GET", f"/v1/experiments/{experiment}/report").text

    def eval_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self._json("GET", "/v1/eval/runs", params={"limit": limit})[
            "runs"
        ]
        return runs

    def eval_run_report(self, run_id: str) -> str:
        return self._call("GET", f"/v1/eval/runs/{run_id}/report").text

    # ---- transport -----------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._call(method, path, **kwargs).json()
        return body

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise error_of(response, self.base_url)
        return response

    @contextmanager
    def _stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise error_of(response, self.base_url)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.TransportError) -> ApiError:
        reason = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
        return ApiError(None, UNREACHABLE, reason, api_url=self.base_url)
