"""The Limiter contract: memory:// and a real Redis must behave alike, except for sharing.

Redis runs at 127.0.0.1:6379; its counters live in DB 2 under a key prefix unique to each
test, and each test clears only its own keys. No skip: a missing Redis fails the suite.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ragserve.config import SecuritySettings, TenantLimits
from ragserve.errors import BackendUnavailable, QuotaExceeded, RateLimited
from ragserve.security.limiting import Limiter

REDIS_URL = "redis://127.0.0.1:6379/2"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"

# url, whether two limiters on that url share their counters
BACKENDS = {"memory": ("memory://", False), "redis": (REDIS_URL, True)}

MakeLimiter = Callable[[], Limiter]


def _settings(url: str, fallback: str = "memory") -> SecuritySettings:
    return SecuritySettings(
        limits_url=url,
        limits_fallback=fallback,
        rate_limit="3/minute",
        questions_per_day=2,
        tokens_per_day=100,
        max_tokens=30,
        tenants={"big": TenantLimits(questions_per_day=4)},
    )


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return BACKENDS[request.param]


@pytest.fixture
def make_limiter(backend: tuple[str, bool]) -> Iterator[MakeLimiter]:
    """Limiters on the backend's url, all under one key prefix unique to this test."""
    prefix = f"ragserve-test-{uuid.uuid4().hex}"
    made: list[Limiter] = []

    def make() -> Limiter:
        made.append(Limiter(_settings(backend[0]), key_prefix=prefix))
        return made[-1]

    yield make
    for limiter in made:
        limiter.reset()


@pytest.fixture
def limiter(make_limiter: MakeLimiter) -> Limiter:
    return make_limiter()


def _seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


def test_hit_beyond_the_rate_is_refused_for_that_key_only(limiter: Limiter) -> None:
    """The fourth hit in a minute raises with 1..60 s to wait; another key still passes."""
    for _ in range(3):
        limiter.hit_rate("key-1")
    with pytest.raises(RateLimited) as caught:
        limiter.hit_rate("key-1")
    assert 1 <= caught.value.retry_after <= 60
    limiter.hit_rate("key-2")


def test_question_quota_per_tenant_with_override(limiter: Limiter) -> None:
    """Default tenants get 2 questions, 'big' gets 4, and neither uses the other's."""
    for _ in range(2):
        limiter.take_question("acme")
    with pytest.raises(QuotaExceeded) as caught:
        limiter.take_question("acme")
    assert 1 <= caught.value.retry_after <= _seconds_to_midnight() + 1
    for _ in range(4):
        limiter.take_question("big")
    with pytest.raises(QuotaExceeded):
        limiter.take_question("big")
    assert (
        limiter.quota_status("acme").questions_used,
        limiter.quota_status("big").questions_used,
    ) == (2, 4)


def test_token_allowance_and_charges(limiter: Limiter) -> None:
    """The allowance clamps to max_tokens and to what is left; overspending refuses next."""
    assert limiter.token_allowance("acme", 1000) == 30
    limiter.charge_tokens("acme", 80)
    assert limiter.token_allowance("acme", None) == 20
    limiter.charge_tokens("acme", 50)
    assert limiter.quota_status("acme").tokens_used == 130
    with pytest.raises(QuotaExceeded):
        limiter.token_allowance("acme", None)


def test_two_limiters_share_counts_only_on_a_shared_storage(
    make_limiter: MakeLimiter, backend: tuple[str, bool]
) -> None:
    """Replicas on one Redis see each other's counts; memory:// limiters do not."""
    first, second = make_limiter(), make_limiter()
    for _ in range(3):
        first.hit_rate("key-1")
    first.take_question("acme")
    first.charge_tokens("acme", 10)
    shared = backend[1]
    status = second.quota_status("acme")
    assert (shared, shared) == (status.questions_used == 1, status.tokens_used == 10)
    if shared:
        with pytest.raises(RateLimited):
            second.hit_rate("key-1")
    else:
        second.hit_rate("key-1")


def test_check_passes_on_a_reachable_storage(limiter: Limiter) -> None:
    """A running storage answers the readiness check."""
    limiter.check()


def test_redis_limiters_under_other_prefixes_are_isolated() -> None:
    """Counters and reset() are confined to a limiter's key prefix."""
    mine = Limiter(_settings(REDIS_URL), key_prefix=f"ragserve-test-{uuid.uuid4().hex}")
    other = Limiter(_settings(REDIS_URL), key_prefix=f"ragserve-test-{uuid.uuid4().hex}")
    try:
        mine.take_question("acme")
        other.take_question("acme")
        mine.reset()
        assert (
            mine.quota_status("acme").questions_used,
            other.quota_status("acme").questions_used,
        ) == (0, 1)
    finally:
        mine.reset()
        other.reset()


@pytest.mark.parametrize(
    "call",
    [
        lambda lim: lim.hit_rate("key-1"),
        lambda lim: lim.take_question("acme"),
        lambda lim: lim.token_allowance("acme", None),
        lambda lim: lim.charge_tokens("acme", 5),
        lambda lim: lim.quota_status("acme"),
        lambda lim: lim.check(),
        lambda lim: lim.reset(),
    ],
    ids=["hit_rate", "take_question", "token_allowance", "charge", "status", "check", "reset"],
)
def test_unreachable_redis_fails_fast_as_backend_unavailable(
    call: Callable[[Limiter], object],
) -> None:
    """Failing closed, every operation on a dead Redis raises BackendUnavailable within 2 s."""
    limiter = Limiter(_settings(DEAD_REDIS_URL, fallback="closed"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        call(limiter)
    assert time.monotonic() - started < 2.0
    assert caught.value.backend == "limits"


def test_dead_redis_falls_back_to_memory_counting_with_the_same_limits() -> None:
    """With the memory fallback, a dead Redis costs a few fast failures, then the breaker
    opens and every limit is enforced in memory exactly as on memory://."""
    limiter = Limiter(_settings(DEAD_REDIS_URL))
    started = time.monotonic()
    for _ in range(3):
        limiter.hit_rate("key-1")
    with pytest.raises(RateLimited):
        limiter.hit_rate("key-1")
    limiter.take_question("acme")
    limiter.take_question("acme")
    with pytest.raises(QuotaExceeded):
        limiter.take_question("acme")
    assert limiter.token_allowance("acme", None) == 30
    limiter.charge_tokens("acme", 95)
    assert limiter.token_allowance("acme", None) == 5
    assert limiter.quota_status("acme").questions_used == 2
    assert time.monotonic() - started < 2.0
    assert limiter.degraded
    with pytest.raises(BackendUnavailable):
        limiter.check()  # readiness still tells the truth about Redis
