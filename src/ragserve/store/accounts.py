"""The accounts seam: API keys, per-tenant daily usage and per-tenant LLM credentials.

Kept beside the documents in the same database so that one backup holds everything. An API key
of another tenant does not exist for a caller that names its tenant (``KeyNotFound``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from ragserve.errors import InvalidQuery
from ragserve.types import ApiKeyRecord, TenantLLMRecord, UsageDay


class AccountStore(Protocol):
    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; raises ``Conflict`` when its ``key_id`` is taken."""
        ...

    def find_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this id, revoked or not."""
        ...

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Keys of one tenant (every tenant when ``None``), oldest first."""
        ...

    def revoke_api_key(self, key_id: str, *, tenant: str | None = None) -> ApiKeyRecord:
        """Set ``revoked_at`` once (revoking again keeps the first time); raises
        ``KeyNotFound`` for an unknown key or one of a tenant other than ``tenant``."""
        ...

    def record_usage(
        self,
        tenant: str,
        day: str,
        *,
        questions: int = 0,
        searches: int = 0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        documents: int = 0,
        chunks: int = 0,
    ) -> None:
        """Add the counts to the tenant's row for ``day`` (``YYYY-MM-DD``), atomically."""
        ...

    def usage(self, tenant: str, *, since: str, until: str) -> list[UsageDay]:
        """The tenant's days from ``since`` to ``until`` inclusive that have a row, ascending."""
        ...

    def set_tenant_llm(self, record: TenantLLMRecord) -> None:
        """Insert or replace the tenant's LLM settings."""
        ...

    def get_tenant_llm(self, tenant: str) -> TenantLLMRecord | None: ...

    def delete_tenant_llm(self, tenant: str) -> bool:
        """Whether there was a row to delete."""
        ...

    def ping(self) -> None:
        """A cheap round trip; raises ``BackendError`` when the database is unreachable."""
        ...


def check_day(day: str) -> str:
    """``day`` itself when it is a ``YYYY-MM-DD`` date; stores compare days as text."""
    try:
        valid = len(day) == 10 and date.fromisoformat(day).isoformat() == day
    except ValueError:
        valid = False
    if not valid:
        raise InvalidQuery(f"invalid day {day!r}; use YYYY-MM-DD")
    return day


def check_range(since: str, until: str) -> None:
    """Both ends are days and ``since`` is not after ``until``."""
    if check_day(since) > check_day(until):
        raise InvalidQuery(f"since ({since}) must not be after until ({until})")


def check_counts(counts: Sequence[int]) -> bool:
    """Whether there is anything to record; raises ``InvalidQuery`` for a negative count."""
    if any(n < 0 for n in counts):
        raise InvalidQuery(f"usage counts must not be negative: {tuple(counts)}")
    return any(counts)
