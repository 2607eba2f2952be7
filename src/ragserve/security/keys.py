"""API keys: ``rsk_`` + a 12-character public id + a 43-character secret.

Only the SHA-256 of the whole key is stored. The id (lowercase letters and digits, fixed length)
is read back from the key to find its record, so checking a key is one lookup and one
constant-time comparison; a revoked key fails on the next request.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ragserve.errors import Conflict, Forbidden, InvalidQuery, Unauthenticated
from ragserve.store.accounts import AccountStore
from ragserve.store.schema import utc_now
from ragserve.types import SCOPES, ApiKeyRecord, Scope

KEY_PREFIX = "rsk_"
KEY_ID_LENGTH = 12
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_BYTES = 32  # token_urlsafe(32): 43 characters of [A-Za-z0-9_-]
_KEY_SHAPE = re.compile(rf"{KEY_PREFIX}([a-z0-9]{{{KEY_ID_LENGTH}}})[A-Za-z0-9_-]{{43}}")
_TENANT_SHAPE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_IMPLIED: dict[Scope, frozenset[Scope]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
    "admin": frozenset(SCOPES),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, the key used (``None`` in local no-auth mode), its scopes."""

    tenant: str
    key_id: str | None
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        """``admin`` implies every scope, ``write`` implies ``read``."""
        return any(scope in _IMPLIED[held] for held in self.scopes)

    def require(self, scope: Scope) -> None:
        """Raises ``Forbidden`` unless the principal holds ``scope`` or a scope implying it."""
        if not self.allows(scope):
            raise Forbidden(f"this API key lacks the {scope!r} scope")


class ApiKeys:
    """Creates, checks, lists and revokes API keys kept in an ``AccountStore``."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    def create(
        self,
        tenant: str,
        scopes: Iterable[str],
        *,
        name: str = "",
        expires_in_s: float | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """A new key for ``tenant``: returns the plaintext (shown once, never stored) and its
        record; with ``expires_in_s`` it stops working after that long (a login session).
        Raises ``InvalidQuery`` for a bad tenant name or scopes."""
        check_tenant(tenant)
        granted = _scopes(scopes)
        expires = (
            (datetime.now(UTC) + timedelta(seconds=expires_in_s)).isoformat(timespec="seconds")
            if expires_in_s is not None
            else None
        )
        for _ in range(3):  # a clash of 62-bit ids is all but impossible; retry anyway
            key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
            key = KEY_PREFIX + key_id + secrets.token_urlsafe(_SECRET_BYTES)
            record = ApiKeyRecord(
                key_id, tenant, _hash(key), granted, name, utc_now(), expires_at=expires
            )
            try:
                self._accounts.add_api_key(record)
            except Conflict:
                continue
            return key, record
        raise Conflict("could not allocate a unique API key id; try again")

    def authenticate(self, presented: str | None) -> Principal:
        """The principal of an active key; raises ``Unauthenticated`` (never echoing the key)."""
        if not presented:
            raise Unauthenticated("missing API key; send Authorization: Bearer <key> or X-API-Key")
        shape = _KEY_SHAPE.fullmatch(presented)
        if shape is None:
            raise Unauthenticated("malformed API key")
        record = self._accounts.find_api_key(shape.group(1))
        if (
            record is None
            or not record.active
            or not hmac.compare_digest(record.key_hash, _hash(presented))
        ):
            raise Unauthenticated("invalid, revoked or expired API key")
        return Principal(record.tenant, record.key_id, frozenset(record.scopes))

    def list(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        """Keys of one tenant (every tenant when ``None``), oldest first, revoked ones included."""
        return self._accounts.list_api_keys(tenant)

    def revoke(self, key_id: str, *, tenant: str | None = None) -> ApiKeyRecord:
        """Revoke a key (idempotent); raises ``KeyNotFound``, also for another tenant's key."""
        return self._accounts.revoke_api_key(key_id, tenant=tenant)


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """``"read,write"`` -> ``("read", "write")``: deduplicated, in ``SCOPES`` order."""
    return _scopes(text.split(","))


def check_tenant(tenant: str) -> str:
    """``tenant`` itself when it is 1-64 letters, digits, ``-``, ``_`` or ``.``."""
    if not _TENANT_SHAPE.fullmatch(tenant):
        raise InvalidQuery(
            f"invalid tenant name {tenant!r}: use 1-64 letters, digits, '-', '_' or '.'"
        )
    return tenant


def _scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    wanted = {value.strip() for value in values} - {""}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidQuery(
            f"unknown scope(s) {', '.join(map(repr, unknown))}; available: {', '.join(SCOPES)}"
        )
    if not wanted:
        raise InvalidQuery(f"give at least one scope: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
