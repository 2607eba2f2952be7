"""The circuit breaker: opens after consecutive failures, probes after the reset time, and
closes on a successful probe."""

from __future__ import annotations

import pytest

from ragserve.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[tuple[BreakerState, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[tuple[BreakerState, BreakerState]]) -> CircuitBreaker:
    return CircuitBreaker(
        failures=3, reset_s=5.0, clock=clock, on_change=lambda *c: changes.append(c)
    )


def test_opens_after_consecutive_failures_only(breaker: CircuitBreaker) -> None:
    """Two failures, a success, two failures: still closed; a third in a row opens it."""
    for _ in range(2):
        breaker.failure()
    breaker.success()
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_one_probe_after_reset_then_closes_on_success(
    breaker: CircuitBreaker, clock: Clock, changes: list[tuple[BreakerState, BreakerState]]
) -> None:
    """After reset_s exactly one caller probes; its success closes the breaker."""
    for _ in range(3):
        breaker.failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert not breaker.allow()  # one probe at a time
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens_for_another_reset_period(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    """A failing probe re-opens at once, without waiting for more failures."""
    for _ in range(3):
        breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_probe_that_never_reports_lets_another_try_after_reset(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    """A lost probe does not keep the breaker half-open for ever."""
    for _ in range(3):
        breaker.failure()
    clock.now += 5
    assert breaker.allow()
    clock.now += 5
    assert breaker.allow()


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker(failures=0)
