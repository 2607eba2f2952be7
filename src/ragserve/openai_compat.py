"""One ``openai`` SDK client and one error mapping, shared by the OpenAI-compatible
embedder and generator (extra ``openai``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ragserve.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    MissingDependencyError,
)

if TYPE_CHECKING:
    from openai import OpenAI

OPENAI_URL = "https://api.openai.com/v1"


def openai_client(
    base_url: str | None, api_key: str | None, *, timeout_s: float, max_retries: int
) -> OpenAI:
    """An SDK client; a local server without auth gets a placeholder key."""
    try:
        from openai import OpenAI
    except ImportError as exc:
        raise MissingDependencyError("openai", "openai") from exc
    if not base_url and not api_key:
        raise ConfigError("set base_url to an OpenAI-compatible server, or api_key for OpenAI")
    return OpenAI(
        base_url=base_url or OPENAI_URL,  # explicit, so the SDK never reads OPENAI_BASE_URL
        api_key=api_key or "not-needed",
        timeout=timeout_s,
        max_retries=max_retries,
    )


@contextmanager
def backend_errors(backend: str, url: str) -> Iterator[None]:
    """Translate ``openai`` SDK exceptions into the RagError tree (the one place it's done).

    Timeouts → BackendTimeout; no connection, 429 and 5xx → BackendUnavailable (worth a
    retry); any other status → BackendError carrying the server's message.
    """
    import openai

    try:
        yield
    except openai.APITimeoutError as exc:
        raise BackendTimeout(backend, f"{url} did not answer in time") from exc
    except openai.APIConnectionError as exc:
        raise BackendUnavailable(backend, f"cannot reach {url}: {exc}") from exc
    except openai.APIStatusError as exc:
        message = f"{url} answered HTTP {exc.status_code}: {exc.message}"
        if exc.status_code == 429 or exc.status_code >= 500:
            raise BackendUnavailable(backend, message) from exc
        raise BackendError(backend, message) from exc
    except openai.OpenAIError as exc:
        raise BackendError(backend, f"{url}: {exc}") from exc
