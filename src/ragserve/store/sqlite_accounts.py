"""The ``AccountStore`` on the embedded store's SQLite file (tables from ``m002_accounts``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from ragserve.errors import Conflict, KeyNotFound, NotFoundError
from ragserve.store.accounts import (
    USER_COLUMNS,
    UserRecord,
    check_counts,
    check_day,
    check_range,
    user_from_row,
    user_values,
)
from ragserve.store.schema import utc_now
from ragserve.store.sqlite_connections import ConnectionPool
from ragserve.types import ApiKeyRecord, Scope, TenantLLMRecord, UsageDay

_KEY_COLUMNS = "key_id, tenant, key_hash, scopes, name, created_at, revoked_at, expires_at"
_COUNTS = ("questions", "searches", "prompt_tokens", "completion_tokens", "documents", "chunks")
_LLM_COLUMNS = "tenant, base_url, model, api_key_encrypted, updated_at"


class SqliteAccountStore:
    """API keys, logins, usage rows and tenant LLM settings, sharing the store's connection pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    # -- API keys ----------------------------------------------------------------------------

    def add_api_key(self, record: ApiKeyRecord) -> None:
        values = (record.key_id, record.tenant, record.key_hash, ",".join(record.scopes),
                  record.name, record.created_at or utc_now(), record.revoked_at,
                  record.expires_at)  # fmt: skip
        with self._pool.transaction(write=True) as conn:
            try:
                conn.execute(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"an API key with id {record.key_id!r} already exists") from exc

    def find_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else _key_from_row(row)

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE ? IS NULL OR tenant = ? "
                "ORDER BY created_at, rowid",
                (tenant, tenant),
            ).fetchall()
        return [_key_from_row(row) for row in rows]

    def revoke_api_key(self, key_id: str, *, tenant: str | None = None) -> ApiKeyRecord:
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) "
                f"WHERE key_id = ? AND (? IS NULL OR tenant = ?) RETURNING {_KEY_COLUMNS}",
                (utc_now(), key_id, tenant, tenant),
            ).fetchone()
        if row is None:  # another tenant's key does not exist for this tenant
            raise KeyNotFound(f"API key {key_id!r} not found")
        return _key_from_row(row)

    # -- users -------------------------------------------------------------------------------

    def create_user(self, record: UserRecord) -> None:
        with self._pool.transaction(write=True) as conn:
            try:
                conn.execute(
                    f"INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    user_values(record, utc_now()),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"a user named {record.username!r} already exists") from exc

    def get_user(self, username: str) -> UserRecord | None:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None else user_from_row(row)

    def list_users(self, tenant: str | None = None) -> list[UserRecord]:
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE ? IS NULL OR tenant = ? "
                "ORDER BY created_at, rowid",
                (tenant, tenant),
            ).fetchall()
        return [user_from_row(row) for row in rows]

    def set_password(self, username: str, password_hash: str) -> UserRecord:
        return self._update_user(
            username,
            "password_hash = ?, password_changed_at = ?, failed_logins = 0, locked_until = NULL",
            (password_hash, utc_now()),
        )

    def disable_user(self, username: str) -> UserRecord:
        return self._update_user(username, "disabled_at = coalesce(disabled_at, ?)", (utc_now(),))

    def record_failed_login(self, username: str, *, lock_after: int, lock_until: str) -> None:
        # Both CASEs read the row's old count, so one statement counts and locks atomically.
        reached = "failed_logins + 1 >= ?"
        with self._pool.transaction(write=True) as conn:
            conn.execute(
                f"UPDATE users SET failed_logins = CASE WHEN {reached} THEN 0 "
                f"ELSE failed_logins + 1 END, locked_until = CASE WHEN {reached} THEN ? "
                "ELSE locked_until END WHERE username = ?",
                (lock_after, lock_after, lock_until, username),
            )

    def clear_failed_logins(self, username: str) -> None:
        with self._pool.transaction(write=True) as conn:
            conn.execute(
                "UPDATE users SET failed_logins = 0 WHERE username = ? AND failed_logins > 0",
                (username,),
            )

    def _update_user(self, username: str, assignments: str, values: tuple[str, ...]) -> UserRecord:
        with self._pool.transaction(write=True) as conn:
            row = conn.execute(
                f"UPDATE users SET {assignments} WHERE username = ? RETURNING {USER_COLUMNS}",
                (*values, username),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"user {username!r} not found")
        return user_from_row(row)

    # -- usage -------------------------------------------------------------------------------

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
        check_day(day)
        counts = (questions, searches, prompt_tokens, completion_tokens, documents, chunks)
        if not check_counts(counts):
            return
        added = ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTS)
        with self._pool.transaction(write=True) as conn:
            conn.execute(
                f"INSERT INTO usage (tenant, day, {', '.join(_COUNTS)}) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, day) DO UPDATE SET {added}",
                (tenant, day, *counts),
            )

    def usage(self, tenant: str, *, since: str, until: str) -> list[UsageDay]:
        check_range(since, until)
        with self._pool.transaction() as conn:
            rows = conn.execute(
                f"SELECT tenant, day, {', '.join(_COUNTS)} FROM usage "
                "WHERE tenant = ? AND day BETWEEN ? AND ? ORDER BY day",
                (tenant, since, until),
            ).fetchall()
        return [UsageDay(*row) for row in rows]

    # -- tenant LLM --------------------------------------------------------------------------

    def set_tenant_llm(self, record: TenantLLMRecord) -> None:
        with self._pool.transaction(write=True) as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO tenant_llm ({_LLM_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (record.tenant, record.base_url, record.model, record.api_key_encrypted,
                 record.updated_at or utc_now()),
            )  # fmt: skip

    def get_tenant_llm(self, tenant: str) -> TenantLLMRecord | None:
        with self._pool.transaction() as conn:
            row = conn.execute(
                f"SELECT {_LLM_COLUMNS} FROM tenant_llm WHERE tenant = ?", (tenant,)
            ).fetchone()
        return None if row is None else TenantLLMRecord(*row)

    def delete_tenant_llm(self, tenant: str) -> bool:
        with self._pool.transaction(write=True) as conn:
            cursor = conn.execute("DELETE FROM tenant_llm WHERE tenant = ?", (tenant,))
        return cursor.rowcount > 0

    def ping(self) -> None:
        # Reads a page of the file: SELECT 1 alone would succeed without touching it.
        with self._pool.connection() as conn:
            conn.execute("SELECT 1 FROM migrations LIMIT 1").fetchall()


def _key_from_row(row: Sequence[Any]) -> ApiKeyRecord:
    key_id, tenant, key_hash, scopes, name, created_at, revoked_at, expires_at = row
    parsed = tuple(cast(Scope, s) for s in scopes.split(",") if s)  # written by add_api_key
    return ApiKeyRecord(key_id, tenant, key_hash, parsed, name, created_at, revoked_at, expires_at)
