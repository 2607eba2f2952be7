"""L2: Redis, shared by every replica; values expire with ``SET ... PX``.

Every call is bounded by ``timeout_s`` (connect and read) and never retried, and a circuit
breaker stops calling a Redis that keeps failing: while it is open a lookup is a miss that
costs nothing, and every ``breaker.reset_s`` one request probes Redis again, so the level
comes back by itself. Failures are counted, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ragserve.breaker import BreakerState, CircuitBreaker
from ragserve.cache.base import Counters, LevelStats
from ragserve.errors import BackendUnavailable, MissingDependencyError
from ragserve.observability import get_logger

if TYPE_CHECKING:
    import redis

_log = get_logger("ragserve.cache")
_SCAN_BATCH = 500


def redis_client(url: str, timeout_s: float) -> redis.Redis:
    """A client whose every command fails within ``timeout_s`` instead of retrying."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise MissingDependencyError("redis", "redis") from exc
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


class RedisLevel:
    """The shared level; ``on_breaker_change(old, new)`` listeners see breaker transitions."""

    name = "l2"

    def __init__(self, client: redis.Redis, breaker_failures: int, breaker_reset_s: float) -> None:
        import redis

        self._client = client
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._counters = Counters()
        self.breaker_listeners: list[Callable[[BreakerState, BreakerState], None]] = []
        self.breaker = CircuitBreaker(
            failures=breaker_failures, reset_s=breaker_reset_s, on_change=self._breaker_changed
        )

    @property
    def client(self) -> redis.Redis:
        return self._client

    def get(self, key: str) -> bytes | None:
        value = self._call("get", lambda: self._client.get(key))
        if isinstance(value, bytes):
            self._counters.add("hits")
            return value
        return None

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._call("set", lambda: self._client.set(key, value, px=max(1, math.ceil(ttl_s * 1000))))

    def delete_prefix(self, prefix: str) -> int:
        """SCAN and UNLINK the keys under ``prefix`` (an administrator's action, so a scan is
        acceptable); raises ``BackendUnavailable`` when Redis fails."""
        removed = 0
        try:
            batch: list[Any] = []
            for key in self._client.scan_iter(match=f"{prefix}*", count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += int(self._client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(self._client.unlink(*batch))
        except self._errors as exc:
            raise BackendUnavailable("cache", f"Redis failed while clearing ({exc})") from exc
        return removed

    def stats(self) -> LevelStats:
        c = self._counters
        return LevelStats(
            level=self.name,
            hits=c["hits"],
            misses=c["misses"],
            errors=c["errors"],
            skipped=c["skipped"],
            write_errors=c["write_errors"],
            breaker=self.breaker.state,
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, op: str, command: Callable[[], Any]) -> Any:
        """The command's result, or None when skipped (breaker open) or failed."""
        prefix = "" if op == "get" else "write_"  # lookups and writes are counted apart
        if not self.breaker.allow():
            self._counters.add(f"{prefix}skipped")
            return None
        try:
            result = command()
        except self._errors as exc:
            self._counters.add(f"{prefix}errors")
            self.breaker.failure()
            _log.debug("cache_redis_failed", op=op, error=str(exc))
            return None
        self.breaker.success()
        if op == "get" and result is None:
            self._counters.add("misses")
        return result

    def _breaker_changed(self, old: BreakerState, new: BreakerState) -> None:
        if new == "open":
            # Idle pooled connections died with Redis: drop them, so the probe connects afresh.
            self._client.connection_pool.disconnect(inuse_connections=False)
        _log.warning("cache_breaker", old=old, new=new)
        for listener in self.breaker_listeners:
            listener(old, new)
