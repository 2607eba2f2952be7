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
    Original,
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
            when = f" It resets in {self.retry_after} s." if self.retry_after else ""
            return f"Your quota is used up: {self.message.rstrip('.')}.{when}"
        if self.status == 401 or self.code == "unauthenticated":
            return "Your key was not accepted. Check it, or ask your administrator for a new one."
        if self.status == 429 or self.code == "rate_limited":
            wait = f"try again in {self.retry_after} s" if self.retry_after else "try again soon"
            return f"Too many requests — {wait}."
        return self.message


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
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

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

    # ---- collections and documents --------------------------------------------------------

    def collections(self) -> list[Collection]:
        body = self._call("GET", "/v1/collections").json()
        return [Collection.of(c) for c in body["collections"]]

    def create_collection(self, name: str) -> Collection:
        return Collection.of(self._call("POST", "/v1/collections", json={"name": name}).json())

    def delete_collection(self, name: str) -> None:
        self._call("DELETE", f"/v1/collections/{name}")

    def documents(self, collection: str, *, limit: int = 100, offset: int = 0) -> DocumentPage:
        params = {"limit": limit, "offset": offset}
        body = self._call("GET", f"/v1/collections/{collection}/documents", params=params).json()
        return DocumentPage([Document.of(d) for d in body["documents"]], body["total"])

    def upload(self, collection: str, files: Sequence[tuple[str, bytes]]) -> list[UploadResult]:
        """Send files for indexing: one result per file, ``accepted`` ones with their job."""
        parts = [("files", (name, data)) for name, data in files]
        response = self._call("POST", f"/v1/collections/{collection}/documents", files=parts)
        return [UploadResult.of(r) for r in response.json()["results"]]

    def job(self, job_id: str) -> Job:
        return Job.of(self._call("GET", f"/v1/jobs/{job_id}").json())

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
        result: dict[str, Any] = self._call("GET", "/v1/usage", params={"days": days}).json()
        return result

    # ---- transport -----------------------------------------------------------------------

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
