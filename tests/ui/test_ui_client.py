"""The UI's API client without a server: SSE parsing, error mapping, friendly messages."""

from __future__ import annotations

import httpx
import pytest

from ragserve.ui.client import UNREACHABLE, ApiClient, ApiError, error_of
from ragserve.ui.sse import RawEvent, parse_events

URL = "http://127.0.0.1:8000"


def test_parse_events_reads_the_answer_stream() -> None:
    """Events end at blank lines; names and JSON data are kept, comments skipped."""
    lines = [
        ": keep-alive",
        "event: token",
        'data: {"text": "Zarnak"}',
        "",
        "event: done",
        'data: {"answer_id": "a1"}',
        "",
    ]
    expected = [RawEvent("token", {"text": "Zarnak"}), RawEvent("done", {"answer_id": "a1"})]
    assert expected == list(parse_events(lines))


def test_parse_events_joins_data_lines_and_keeps_a_last_unterminated_event() -> None:
    """Several ``data:`` lines form one JSON document; a cut stream still yields its event."""
    lines = ["data: {", 'data: "text": "x"}', "", "event: token", 'data: {"text": "y"}']
    expected = [RawEvent("message", {"text": "x"}), RawEvent("token", {"text": "y"})]
    assert expected == list(parse_events(lines))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            ApiError(None, UNREACHABLE, "connection failed", api_url=URL),
            f"The ragserve API at {URL} is not reachable (connection failed). "
            "Check that it is running and that RAGSERVE_UI__API_URL points to it.",
        ),
        (
            ApiError(401, "unauthenticated", "unknown API key"),
            "Your key was not accepted. Check it, or ask your administrator for a new one.",
        ),
        (
            ApiError(429, "rate_limited", "slow down", retry_after=17),
            "Too many requests — try again in 17 s.",
        ),
        (ApiError(429, "rate_limited", "slow down"), "Too many requests — try again soon."),
        (
            ApiError(429, "quota_exceeded", "daily question quota reached.", retry_after=51755),
            "Your quota is used up: daily question quota reached (in 14 h 22 min).",
        ),
        (
            ApiError(429, "quota_exceeded", "daily token quota reached", retry_after=59),
            "Your quota is used up: daily token quota reached (in less than a minute).",
        ),
        (
            ApiError(429, "quota_exceeded", "daily token quota reached", retry_after=600),
            "Your quota is used up: daily token quota reached (in 10 min).",
        ),
        (
            ApiError(429, "quota_exceeded", "daily token quota reached"),
            "Your quota is used up: daily token quota reached.",
        ),
        (ApiError(404, "collection_not_found", "no collection 'x'"), "no collection 'x'"),
    ],
)
def test_friendly_messages(error: ApiError, message: str) -> None:
    """Each failure reads as advice, never as a status code or traceback."""
    assert message == error.friendly()


def test_error_of_reads_the_error_body_and_retry_after() -> None:
    """The API's JSON error and its Retry-After header become the error's fields."""
    response = httpx.Response(
        429,
        json={"error": {"code": "rate_limited", "message": "too many requests"}},
        headers={"Retry-After": "30"},
    )
    error = error_of(response, URL)
    assert (
        error.status,
        error.code,
        error.message,
        error.retry_after,
    ) == (429, "rate_limited", "too many requests", 30)


def test_error_of_tolerates_a_body_that_is_not_the_apis() -> None:
    """A proxy's HTML error page still gives a message naming the status."""
    error = error_of(httpx.Response(502, text="<html>Bad gateway</html>"), URL)
    assert (error.code, error.message) == ("http_502", "HTTP 502 Bad Gateway")


def test_a_closed_port_is_unreachable(closed_port: int) -> None:
    """Connection refused is an ``ApiError`` with no status, not an httpx exception."""
    url = f"http://127.0.0.1:{closed_port}"
    with ApiClient(url, "rsk_x", timeout=2) as client, pytest.raises(ApiError) as caught:
        client.collections()
    assert (caught.value.status, caught.value.code) == (None, UNREACHABLE)


def test_an_error_event_mid_stream_is_raised() -> None:
    """An ``error`` event ends the answer with an ``ApiError`` carrying the server's code."""
    body = (
        'event: token\ndata: {"text": "Zar"}\n\n'
        'event: error\ndata: {"error": {"code": "backend_timeout", "message": "LLM timed out"}}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers={"Content-Type": "text/event-stream"})

    with ApiClient(URL, "rsk_x", transport=httpx.MockTransport(handler)) as client:
        events = client.ask_stream("moons", "When?")
        assert next(events).text == "Zar"  # type: ignore[union-attr]
        with pytest.raises(ApiError) as caught:
            next(events)
    assert (caught.value.code, caught.value.friendly()) == ("backend_timeout", "LLM timed out")
