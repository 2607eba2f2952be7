"""A request with a body is authenticated before the body is read: a client without a valid
key gets its 401 while it has sent only the headers."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
from api_server import ApiServer

DECLARED = 1_000_000  # within the body limits, so only authentication can answer early


def _headers_only(server: ApiServer, path: str, content_type: str, key: str | None) -> bytes:
    """Send a request's headers, announcing a body that never comes; return what came back."""
    url = urlsplit(server.url)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n{auth}"
        f"Content-Type: {content_type}\r\nContent-Length: {DECLARED}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(head.encode())
        reply = b""
        try:
            while not _complete(reply):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except TimeoutError:
            pass  # nothing (more) came: the server is waiting for the body
        return reply


def _complete(reply: bytes) -> bool:
    """Whether ``reply`` holds a whole response: headers and ``Content-Length`` bytes."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/query", "application/json"),
        ("/v1/collections/any/documents", "multipart/form-data; boundary=xyz"),
        ("/v1/collections/any/documents/text", "application/json"),
    ],
)
@pytest.mark.parametrize("key", [None, "rsk_invalid"])
def test_no_valid_key_is_refused_before_the_body(
    api_server: ApiServer, path: str, content_type: str, key: str | None
) -> None:
    """No key or a bad key: 401 with the JSON error, without waiting for the body."""
    reply = _headers_only(api_server, path, content_type, key)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 401"), reply[:200]
    body = rest.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["error"]["code"] == "unauthenticated"


def test_a_valid_key_waits_for_the_body(api_server: ApiServer) -> None:
    """With a valid key the server does read the body (the control for the test above)."""
    reply = _headers_only(api_server, "/v1/query", "application/json", api_server.key("gate"))
    assert reply == b""
