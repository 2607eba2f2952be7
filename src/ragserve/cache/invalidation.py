"""Tenant clears, told to every replica over Redis pub/sub.

Entries are never stale (their keys carry the collection version), so this only serves an
administrator's ``DELETE /v1/cache``: the replica that takes it clears its own L1 and Redis,
and publishes the tenant's key prefix; every replica (itself included) drops the L1 entries
under it. A replica that is disconnected from Redis at that moment misses the message; its
L1 entries then go when ``cache.l1_ttl_s`` runs out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ragserve.observability import get_logger

if TYPE_CHECKING:
    import redis

CHANNEL = "ragserve:cache:v1:invalidate"
_log = get_logger("ragserve.cache")


class Invalidations:
    """A daemon thread subscribed to ``CHANNEL`` that hands each prefix to ``drop``."""

    def __init__(
        self,
        client: redis.Redis,
        drop: Callable[[str], object],
        *,
        reconnect_s: float = 5.0,
        poll_s: float = 0.5,
    ) -> None:
        import redis as redis_module

        self._client = client
        self._drop = drop
        self._reconnect_s = reconnect_s
        self._poll_s = poll_s
        self._errors = (redis_module.RedisError, OSError)
        self._stopped = threading.Event()
        self.subscribed = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="ragserve-cache-invalidations", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def publish(self, prefix: str) -> bool:
        """Tell the other replicas; False when Redis did not take the message."""
        try:
            self._client.publish(CHANNEL, prefix)
        except self._errors as exc:
            _log.warning("cache_invalidation_not_published", error=str(exc))
            return False
        return True

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._poll_s + 1)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except self._errors as exc:
                _log.debug("cache_invalidations_disconnected", error=str(exc))
            self.subscribed.clear()
            self._stopped.wait(self._reconnect_s)

    def _listen(self) -> None:
        # redis-py leaves pubsub() unannotated
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(CHANNEL)
            self.subscribed.set()
            while not self._stopped.is_set():
                message = pubsub.get_message(timeout=self._poll_s)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self._drop(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            pubsub.close()
