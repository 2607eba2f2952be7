"""Bring-your-own LLM: a tenant's OpenAI-compatible server, model and key.

The key is encrypted at rest with the server secret and never leaves this module in clear
text except into the SDK client. Generators are cached per tenant and rebuilt when the stored
record changes, so every replica picks up a change on its next query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ragserve.config import LLMSettings
from ragserve.errors import InvalidQuery
from ragserve.generate import Generator
from ragserve.security.secrets import SecretCipher
from ragserve.store.accounts import AccountStore
from ragserve.store.schema import utc_now
from ragserve.types import TenantLLMRecord


@dataclass(frozen=True)
class TenantLLMView:
    """What the API may show of a tenant's LLM: never the key, only whether one is set."""

    base_url: str
    model: str
    api_key_set: bool
    updated_at: str


class TenantLLMs:
    """Per-tenant generators over the account store."""

    def __init__(
        self,
        accounts: AccountStore,
        cipher: Callable[[], SecretCipher],
        defaults: LLMSettings,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self._accounts = accounts
        self._cipher = cipher
        self._defaults = defaults
        self._allowed_hosts = tuple(h.lower() for h in allowed_hosts)
        self._cache: dict[str, tuple[str, Generator]] = {}
        self._lock = threading.Lock()

    def set(self, tenant: str, base_url: str, model: str, api_key: str | None) -> TenantLLMView:
        base_url = valid_base_url(base_url, self._allowed_hosts)
        model = model.strip()
        if not model or len(model) > 200:
            raise InvalidQuery("model must be 1-200 characters")
        encrypted = self._cipher().encrypt(api_key) if api_key else None
        record = TenantLLMRecord(tenant, base_url, model, encrypted, utc_now())
        self._accounts.set_tenant_llm(record)
        return _view(record)

    def get(self, tenant: str) -> TenantLLMView | None:
        record = self._accounts.get_tenant_llm(tenant)
        return None if record is None else _view(record)

    def delete(self, tenant: str) -> bool:
        with self._lock:
            self._cache.pop(tenant, None)
        return self._accounts.delete_tenant_llm(tenant)

    def generator_for(self, tenant: str) -> Generator | None:
        """The tenant's own generator, or None to use the server's."""
        record = self._accounts.get_tenant_llm(tenant)
        if record is None:
            return None
        stamp = f"{record.updated_at}|{record.base_url}|{record.model}"
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        from ragserve.generate.openai import OpenAIGenerator  # needs extra "openai"

        api_key = (
            self._cipher().decrypt(record.api_key_encrypted) if record.api_key_encrypted else None
        )
        generator = OpenAIGenerator(
            record.base_url,
            record.model,
            api_key=api_key,
            max_tokens=self._defaults.max_tokens,
            temperature=self._defaults.temperature,
            context_tokens=self._defaults.context_tokens,
            timeout_s=self._defaults.timeout_s,
        )
        with self._lock:
            self._cache[tenant] = (stamp, generator)
        return generator


def valid_base_url(url: str, allowed_hosts: Sequence[str] = ()) -> str:
    """``url`` without a trailing slash, when it is http(s) and, if ``allowed_hosts`` is not
    empty, names one of them (``.example.com`` also allows its subdomains)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidQuery("base_url must be an http(s) URL of an OpenAI-compatible server")
    if allowed_hosts and not any(
        host == allowed or (allowed.startswith(".") and host.endswith(allowed))
        for allowed in allowed_hosts
    ):
        raise InvalidQuery(
            f"base_url host {host!r} is not allowed here; allowed: {', '.join(allowed_hosts)}"
        )
    return url.strip().rstrip("/")


def _view(record: TenantLLMRecord) -> TenantLLMView:
    return TenantLLMView(
        record.base_url, record.model, record.api_key_encrypted is not None, record.updated_at
    )
