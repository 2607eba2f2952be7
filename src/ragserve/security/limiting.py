"""Per-key request rates and per-tenant daily quotas, counted on a ``limits`` storage.

``memory://`` counts per process; ``redis://host:6379/<db>`` is shared by every replica.
The request rate uses the moving-window strategy: exact, and its oldest entry tells when
the next request fits (Retry-After). Quotas are fixed windows per UTC day: one counter per
tenant and day, compared with the limit here, so changing a tenant's limit keeps the
day's usage.

When Redis fails (down, or slower than ``limits_timeout_s``), a circuit breaker opens and,
with ``limits_fallback = "memory"`` (the default), counting moves to this process's memory:
every replica then enforces the limits on its own share of the traffic until Redis answers
again (the breaker probes it every ``limits_breaker_reset_s``). Counts made meanwhile are not
copied back. With ``limits_fallback = "closed"`` a storage error raises
``BackendUnavailable("limits", ...)``, which the API answers with 503.
"""

from __future__ import annotations

import importlib.util
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from ragserve.breaker import BreakerState, CircuitBreaker
from ragserve.config import SecuritySettings
from ragserve.errors import (
    BackendUnavailable,
    ConfigError,
    MissingDependencyError,
    QuotaExceeded,
    RateLimited,
)
from ragserve.observability import get_logger

ACCEPTED_URLS = "memory:// or redis://[:password@]host:6379/<db> (rediss:// for TLS)"
_REDIS_SCHEMES = frozenset({"redis", "rediss"})
_DB_PATH = re.compile(r"/?\d*")
_KEY_GRACE_S = 3600  # day counters outlive midnight a little; their key names the day anyway
_log = get_logger("ragserve.limits")
_T = TypeVar("_T")


@dataclass(frozen=True)
class TenantQuota:
    """A tenant's effective limits: the defaults with its overrides applied."""

    questions_per_day: int
    tokens_per_day: int
    max_tokens: int


@dataclass(frozen=True)
class QuotaStatus:
    """A tenant's usage today (UTC) and when it resets."""

    questions_used: int
    questions_limit: int
    tokens_used: int
    tokens_limit: int
    max_tokens: int
    resets_at: str


class Limiter:
    """Counters on a `limits` storage: per-key request rate and per-tenant daily quotas."""

    def __init__(
        self,
        settings: SecuritySettings,
        *,
        key_prefix: str = "ragserve",
        on_breaker_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self._settings = settings
        self._rate = _parse_rate(settings.rate_limit)
        self._login_rate = _parse_rate(settings.login_rate)
        self._login_client_rate = _parse_rate(settings.login_client_rate)
        self._where = _describe(settings.limits_url)
        self._storage = _open_storage(settings.limits_url, settings.limits_timeout_s, key_prefix)
        self._windows = {id(self._storage): MovingWindowRateLimiter(self._storage)}
        self._fallback: Storage | None = None
        if not isinstance(self._storage, MemoryStorage) and settings.limits_fallback == "memory":
            self._fallback = MemoryStorage(wrap_exceptions=True)
            self._windows[id(self._fallback)] = MovingWindowRateLimiter(self._fallback)

        def changed(old: BreakerState, new: BreakerState) -> None:
            _log.warning("limits_breaker", where=self._where, old=old, new=new)
            if on_breaker_change is not None:
                on_breaker_change(old, new)

        self._breaker = CircuitBreaker(
            failures=settings.limits_breaker_failures,
            reset_s=settings.limits_breaker_reset_s,
            on_change=changed,
        )

    @property
    def has_fallback(self) -> bool:
        """Whether requests are still counted (in memory) while the shared storage fails."""
        return self._fallback is not None

    @property
    def degraded(self) -> bool:
        """True while the shared storage is skipped (breaker open or probing)."""
        return self._breaker.state != "closed"

    def hit_rate(self, key_id: str) -> None:
        """Count one request for ``key_id``; raises RateLimited when its window is full."""

        def hit(storage: Storage) -> tuple[bool, float]:
            window = self._windows[id(storage)]
            if window.hit(self._rate, "rate", key_id):
                return True, 0.0
            return False, window.get_window_stats(self._rate, "rate", key_id).reset_time

        allowed, reset_time = self._call(hit)
        if allowed:
            return
        retry = max(1, math.ceil(reset_time - time.time()))
        raise RateLimited(
            f"rate limit of {self._rate} exceeded for this API key; retry in {retry} s",
            retry_after=retry,
        )

    def hit_login(self, username: str, client: str) -> None:
        """Count one failed login for the username and for the client address; raises
        ``RateLimited`` once either window is full (password guessing, one account or many)."""
        for rate, kind, subject in self._login_windows(username, client):
            allowed, reset_time = self._call(partial(_window_hit, self, rate, kind, subject))
            if not allowed:
                retry = max(1, math.ceil(reset_time - time.time()))
                raise RateLimited(f"too many failed logins; retry in {retry} s", retry_after=retry)

    def login_blocked(self, username: str, client: str) -> int:
        """Seconds until a login for ``username`` from ``client`` may be tried again (0: now),
        checked before the password so a blocked guesser learns nothing from it."""
        wait = 0.0
        for rate, kind, subject in self._login_windows(username, client):
            allowed, reset_time = self._call(partial(_window_test, self, rate, kind, subject))
            if not allowed:
                wait = max(wait, reset_time - time.time())
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def _login_windows(self, username: str, client: str) -> list[tuple[RateLimitItem, str, str]]:
        return [
            (self._login_rate, "login-user", username.casefold()),
            (self._login_client_rate, "login-client", client),
        ]

    def window(self, storage: Storage) -> MovingWindowRateLimiter:
        return self._windows[id(storage)]

    def limits_for(self, tenant: str) -> TenantQuota:
        """The defaults from settings, overridden by the tenant's fields that are set."""
        s = self._settings
        own = s.tenants.get(tenant)
        if own is None:
            return TenantQuota(s.questions_per_day, s.tokens_per_day, s.max_tokens)
        return TenantQuota(
            s.questions_per_day if own.questions_per_day is None else own.questions_per_day,
            s.tokens_per_day if own.tokens_per_day is None else own.tokens_per_day,
            s.max_tokens if own.max_tokens is None else own.max_tokens,
        )

    def take_question(self, tenant: str) -> None:
        """Count one question today; raises QuotaExceeded when the daily quota is used up."""
        limit = self.limits_for(tenant).questions_per_day
        key = _day_key("questions", tenant)

        def take(storage: Storage) -> bool:
            if storage.incr(key, _key_expiry(), amount=1) <= limit:
                return True
            storage.incr(key, _key_expiry(), amount=-1)  # a refusal is not usage
            return False

        if limit > 0 and self._call(take):
            return
        raise _exhausted("question", limit)

    def token_allowance(self, tenant: str, requested: int | None) -> int:
        """Completion tokens this request may use; raises QuotaExceeded when none are left."""
        quota = self.limits_for(tenant)
        remaining = quota.tokens_per_day - self._call(
            lambda storage: storage.get(_day_key("tokens", tenant))
        )
        if remaining <= 0:
            raise _exhausted("token", quota.tokens_per_day)
        return max(1, min(requested or quota.max_tokens, quota.max_tokens, remaining))

    def charge_tokens(self, tenant: str, tokens: int) -> None:
        """Record tokens spent, even beyond the quota: the next request is refused instead."""
        if tokens <= 0:
            return
        key = _day_key("tokens", tenant)
        self._call(lambda storage: storage.incr(key, _key_expiry(), amount=tokens))

    def quota_status(self, tenant: str) -> QuotaStatus:
        """The tenant's usage today against its limits."""
        quota = self.limits_for(tenant)
        questions, tokens = self._call(
            lambda storage: (
                storage.get(_day_key("questions", tenant)),
                storage.get(_day_key("tokens", tenant)),
            )
        )
        return QuotaStatus(
            questions_used=questions,
            questions_limit=quota.questions_per_day,
            tokens_used=tokens,
            tokens_limit=quota.tokens_per_day,
            max_tokens=quota.max_tokens,
            resets_at=_next_midnight().isoformat(),
        )

    def check(self) -> None:
        """Raise BackendUnavailable unless the shared storage answers (for /readyz)."""
        try:
            healthy = self._storage.check()
        except StorageError as exc:
            raise self._unavailable(str(exc.storage_error)) from exc
        if not healthy:
            raise BackendUnavailable("limits", f"{self._where} does not answer; is it running?")

    def reset(self) -> None:
        """Clear this limiter's counters (on Redis: the keys under its prefix only)."""
        for storage in (self._storage, self._fallback):
            if storage is None:
                continue
            try:
                storage.reset()
            except StorageError as exc:
                raise self._unavailable(str(exc.storage_error)) from exc

    def _call(self, op: Callable[[Storage], _T]) -> _T:
        """``op`` on the shared storage, or on the fallback while the breaker is open."""
        if self._breaker.allow():
            try:
                result = op(self._storage)
            except StorageError as exc:
                self._breaker.failure()
                if self._fallback is None:
                    raise self._unavailable(str(exc.storage_error)) from exc
            else:
                self._breaker.success()
                return result
        if self._fallback is None:
            raise self._unavailable("skipped while its circuit breaker is open")
        return op(self._fallback)

    def _unavailable(self, reason: str) -> BackendUnavailable:
        return BackendUnavailable(
            "limits",
            f"{self._where} failed ({reason}); is it running, and is security.limits_url right?",
        )


def _parse_rate(text: str) -> RateLimitItem:
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if len(items) != 1 or items[0].amount < 1:
        raise ConfigError(
            f"security.rate_limit must be one limit like '600/minute' or '10 per second'; "
            f"got {text!r}"
        )
    return items[0]


def _open_storage(url: str, timeout_s: float, key_prefix: str) -> Storage:
    parts = urlsplit(url)
    if parts.scheme == "memory" and not (parts.netloc or parts.path):
        return MemoryStorage(wrap_exceptions=True)
    if parts.scheme in _REDIS_SCHEMES and _DB_PATH.fullmatch(parts.path):
        return _open_redis(url, timeout_s, key_prefix)
    raise ConfigError(f"security.limits_url must be {ACCEPTED_URLS}; got {_describe(url)}")


def _open_redis(url: str, timeout_s: float, key_prefix: str) -> Storage:
    if importlib.util.find_spec("redis") is None:
        raise MissingDependencyError("redis", "redis")
    try:
        return RedisStorage(
            url,
            key_prefix=f"{key_prefix}:limits",  # reset() deletes only the keys under it
            wrap_exceptions=True,
            socket_timeout=timeout_s,  # a dead Redis fails fast instead of stalling requests
            socket_connect_timeout=timeout_s,
        )
    except (ConfigurationError, ValueError) as exc:
        raise ConfigError(f"security.limits_url is invalid ({exc}); use {ACCEPTED_URLS}") from exc


def _describe(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else repr(url)


def _day_key(kind: str, tenant: str) -> str:
    return f"quota/{kind}/{datetime.now(UTC).date().isoformat()}/{tenant}"


def _next_midnight() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)


def _seconds_to_midnight() -> int:
    return max(1, math.ceil((_next_midnight() - datetime.now(UTC)).total_seconds()))


def _key_expiry() -> int:
    return _seconds_to_midnight() + _KEY_GRACE_S


def _exhausted(what: str, limit: int) -> QuotaExceeded:
    resets = _next_midnight().strftime("%H:%M")
    return QuotaExceeded(
        f"daily {what} quota of {limit} reached; resets at {resets} UTC",
        retry_after=_seconds_to_midnight(),
        kind=f"{what}s",
    )


def _window_hit(
    limiter: Limiter, rate: RateLimitItem, kind: str, subject: str, storage: Storage
) -> tuple[bool, float]:
    window = limiter.window(storage)
    if window.hit(rate, kind, subject):
        return True, 0.0
    return False, window.get_window_stats(rate, kind, subject).reset_time


def _window_test(
    limiter: Limiter, rate: RateLimitItem, kind: str, subject: str, storage: Storage
) -> tuple[bool, float]:
    window = limiter.window(storage)
    if window.test(rate, kind, subject):
        return True, 0.0
    return False, window.get_window_stats(rate, kind, subject).reset_time
