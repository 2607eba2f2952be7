"""A circuit breaker for optional remote dependencies (Redis for limits and the cache).

Closed: calls go through. After ``failures`` consecutive failures it opens: callers skip the
dependency (and use their fallback) without paying its timeout. After ``reset_s`` one caller
is let through as a probe (half-open); its success closes the breaker, its failure re-opens
it for another ``reset_s``. So a dead dependency costs one timeout per ``reset_s``, and a
recovered one is used again without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Thread-safe; ``on_change(old, new)`` is called outside the lock on every transition."""

    def __init__(
        self,
        *,
        failures: int = 3,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """Whether to call the dependency now (false: use the fallback)."""
        with self._lock:
            old = self._state
            if old == "closed":
                return True
            # open, or half-open with a probe that never reported back: one more probe
            if self._clock() - self._opened_at < self.reset_s:
                return False
            self._state, self._opened_at = "half_open", self._clock()
        self._changed(old, "half_open")
        return True

    def success(self) -> None:
        with self._lock:
            old = self._state
            self._state, self._consecutive = "closed", 0
        self._changed(old, "closed")

    def failure(self) -> None:
        with self._lock:
            old = self._state
            self._consecutive += 1
            if old == "half_open" or self._consecutive >= self.failures:
                self._state, self._opened_at = "open", self._clock()
            new = self._state
        self._changed(old, new)

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        if old != new and self._on_change is not None:
            self._on_change(old, new)
