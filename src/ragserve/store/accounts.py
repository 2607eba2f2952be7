"""The accounts seam: API keys, user logins, per-tenant daily usage and per-tenant LLM credentials.

Kept beside the documents in the same database so that one backup holds everything. An API key
of another tenant does not exist for a caller that names its tenant (``KeyNotFound``).

Usernames are global login names: unique across the store (a login form asks for a username
and a password, not a tenant), each mapped to exactly one tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, cast

from ragserve.errors import InvalidQuery
from ragserve.types import ApiKeyRecord, Scope, TenantLLMRecord, UsageDay

USER_COLUMNS = (
    "username, tenant, password_hash, scopes, created_at, password_changed_at, disabled_at, "
    "failed_logins, locked_until"
)
"""The ``users`` columns in ``UserRecord`` field order, for both dialects' SELECTs."""


@dataclass(frozen=True)
class UserRecord:
    """A login: only a slow salted hash of the password is kept (``security/passwords.py``).

    ``disabled_at`` is set once and never cleared; ``locked_until`` (an ISO time) refuses
    logins until then after too many failures in a row, which ``failed_logins`` counts.
    """

    username: str
    tenant: str
    password_hash: str
    scopes: tuple[Scope, ...]
    created_at: str = ""
    password_changed_at: str = ""
    disabled_at: str | None = None
    failed_logins: int = 0
    locked_until: str | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def locked(self, now: str) -> bool:
        """Whether ``now`` (an ISO time like ``utc_now()``) is before ``locked_until``."""
        return self.locked_until is not None and now < self.locked_until


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

    def create_user(self, record: UserRecord) -> None:
        """Store a new login; raises ``Conflict`` when its ``username`` is taken (any tenant)."""
        ...

    def get_user(self, username: str) -> UserRecord | None:
        """The login with this username, disabled or not."""
        ...

    def list_users(self, tenant: str | None = None) -> list[UserRecord]:
        """Logins of one tenant (every tenant when ``None``), oldest first."""
        ...

    def set_password(self, username: str, password_hash: str) -> UserRecord:
        """Replace the hash, stamp ``password_changed_at`` and clear failures and lock; raises
        ``NotFoundError`` for an unknown username."""
        ...

    def disable_user(self, username: str) -> UserRecord:
        """Set ``disabled_at`` once (disabling again keeps the first time); raises
        ``NotFoundError`` for an unknown username."""
        ...

    def record_failed_login(self, username: str, *, lock_after: int, lock_until: str) -> None:
        """Count a failed login atomically; the count reaching ``lock_after`` locks the login
        until ``lock_until`` and starts the count again. An unknown username is ignored."""
        ...

    def clear_failed_logins(self, username: str) -> None:
        """Reset the count after a successful login (the lock has expired by then)."""
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


def user_from_row(row: Sequence[Any]) -> UserRecord:
    """A ``UserRecord`` from a row of ``USER_COLUMNS``; scopes were joined by ``create_user``."""
    username, tenant, password_hash, scopes, created, changed, disabled, failed, locked = row
    parsed = tuple(cast(Scope, s) for s in scopes.split(",") if s)
    return UserRecord(
        username, tenant, password_hash, parsed, created, changed, disabled, int(failed), locked
    )


def user_values(record: UserRecord, now: str) -> tuple[Any, ...]:
    """The INSERT values of ``record`` in ``USER_COLUMNS`` order, unset times as ``now``."""
    created = record.created_at or now
    return (record.username, record.tenant, record.password_hash, ",".join(record.scopes),
            created, record.password_changed_at or created, record.disabled_at,
            record.failed_logins, record.locked_until)  # fmt: skip
