"""The Limiter on the in-process memory storage: rates, quotas, overrides and bad settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ragserve.config import SecuritySettings, TenantLimits
from ragserve.errors import ConfigError, QuotaExceeded, RateLimited
from ragserve.security.limiting import Limiter, QuotaStatus, TenantQuota


def _settings(**overrides: object) -> SecuritySettings:
    values: dict[str, object] = {
        "rate_limit": "3/minute",
        "questions_per_day": 2,
        "tokens_per_day": 100,
        "max_tokens": 30,
        "tenants": {"big": TenantLimits(questions_per_day=5, max_tokens=50)},
    }
    return SecuritySettings.model_validate(values | overrides)


def _next_midnight() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def _seconds_to_midnight() -> float:
    return (_next_midnight() - datetime.now(UTC)).total_seconds()


@pytest.fixture
def limiter() -> Iterator[Limiter]:
    limiter = Limiter(_settings())
    yield limiter
    limiter.reset()


def test_hit_beyond_the_rate_raises_rate_limited_with_retry_after(limiter: Limiter) -> None:
    """The fourth request in a minute under 3/minute is refused with a retry time."""
    for _ in range(3):
        limiter.hit_rate("key-1")
    with pytest.raises(RateLimited) as caught:
        limiter.hit_rate("key-1")
    assert 1 <= caught.value.retry_after <= 60
    assert type(caught.value) is RateLimited
    assert "rate limit of 3 per 1 minute exceeded for this API key" in str(caught.value)


def test_rate_is_counted_per_key(limiter: Limiter) -> None:
    """One key's full window does not limit another key."""
    for _ in range(3):
        limiter.hit_rate("key-1")
    limiter.hit_rate("key-2")


def test_rate_and_quota_counters_do_not_collide(limiter: Limiter) -> None:
    """Requests under a key id equal to a tenant name use none of that tenant's quota."""
    for _ in range(3):
        limiter.hit_rate("acme")
    limiter.take_question("acme")
    assert limiter.quota_status("acme").questions_used == 1


def test_question_quota_allows_n_then_refuses_until_midnight(limiter: Limiter) -> None:
    """Two questions pass under a quota of 2; the third waits until UTC midnight."""
    limiter.take_question("acme")
    limiter.take_question("acme")
    with pytest.raises(QuotaExceeded) as caught:
        limiter.take_question("acme")
    assert 1 <= caught.value.retry_after <= _seconds_to_midnight() + 1
    assert str(caught.value) == "daily question quota of 2 reached; resets at 00:00 UTC"


def test_refused_questions_are_not_counted_as_usage(limiter: Limiter) -> None:
    """Usage stays at the limit however many questions are refused."""
    for _ in range(2):
        limiter.take_question("acme")
    for _ in range(3):
        with pytest.raises(QuotaExceeded):
            limiter.take_question("acme")
    assert limiter.quota_status("acme").questions_used == 2


def test_zero_question_quota_refuses_the_first_question() -> None:
    """A quota of 0 allows no questions at all."""
    limiter = Limiter(_settings(questions_per_day=0))
    with pytest.raises(QuotaExceeded, match="daily question quota of 0 reached"):
        limiter.take_question("acme")


def test_tenant_override_applies_and_other_tenants_keep_defaults(limiter: Limiter) -> None:
    """'big' gets its five questions while 'acme' still has its own two."""
    for _ in range(5):
        limiter.take_question("big")
    with pytest.raises(QuotaExceeded):
        limiter.take_question("big")
    limiter.take_question("acme")
    limiter.take_question("acme")


def test_limits_for_overrides_only_the_fields_a_tenant_sets(limiter: Limiter) -> None:
    """Unset override fields keep the defaults."""
    assert TenantQuota(5, 100, 50) == limiter.limits_for("big")
    assert TenantQuota(2, 100, 30) == limiter.limits_for("acme")


def test_token_allowance_clamps_to_max_tokens_and_remaining(limiter: Limiter) -> None:
    """The allowance is the request, capped by max_tokens and by what is left today."""
    assert limiter.token_allowance("acme", None) == 30
    assert limiter.token_allowance("acme", 500) == 30
    assert limiter.token_allowance("acme", 10) == 10
    limiter.charge_tokens("acme", 85)
    assert limiter.token_allowance("acme", None) == 15


def test_charge_beyond_remaining_makes_the_next_allowance_raise(limiter: Limiter) -> None:
    """Spending past the quota is recorded in full and refuses the next request."""
    limiter.charge_tokens("acme", 90)
    limiter.charge_tokens("acme", 40)
    assert limiter.quota_status("acme").tokens_used == 130
    with pytest.raises(QuotaExceeded, match="daily token quota of 100 reached"):
        limiter.token_allowance("acme", 1)


def test_charging_zero_or_fewer_tokens_is_a_no_op(limiter: Limiter) -> None:
    """Non-positive charges leave usage untouched."""
    limiter.charge_tokens("acme", 0)
    limiter.charge_tokens("acme", -5)
    assert limiter.quota_status("acme").tokens_used == 0


def test_quota_status_reports_usage_limits_and_next_utc_midnight(limiter: Limiter) -> None:
    """The status counts today's questions and tokens and names the reset instant."""
    limiter.take_question("big")
    limiter.charge_tokens("big", 7)
    expected = QuotaStatus(1, 5, 7, 100, 50, _next_midnight().isoformat())
    assert expected == limiter.quota_status("big")


def test_two_memory_limiters_do_not_share_counts() -> None:
    """memory:// counts per instance, so a second limiter starts from zero."""
    first, second = Limiter(_settings()), Limiter(_settings())
    first.take_question("acme")
    first.take_question("acme")
    second.take_question("acme")
    assert second.quota_status("acme").questions_used == 1


def test_reset_clears_every_counter(limiter: Limiter) -> None:
    """After reset the rate window and the quotas are empty again."""
    for _ in range(3):
        limiter.hit_rate("key-1")
    limiter.take_question("acme")
    limiter.charge_tokens("acme", 100)
    limiter.reset()
    limiter.hit_rate("key-1")
    assert limiter.quota_status("acme").questions_used == 0
    assert limiter.token_allowance("acme", None) == 30


def test_check_passes_on_memory(limiter: Limiter) -> None:
    """The memory storage is always reachable."""
    limiter.check()


@pytest.mark.parametrize("rate", ["lots/forever", "", "0/minute", "1/second;100/minute"])
def test_bad_rate_string_is_a_config_error(rate: str) -> None:
    """Only a single positive limit such as '600/minute' is accepted."""
    with pytest.raises(ConfigError, match=r"security\.rate_limit must be one limit"):
        Limiter(_settings(rate_limit=rate))


@pytest.mark.parametrize(
    "url", ["ftp://x", "memcached://127.0.0.1:11211", "async+memory://", "redis://h/x", "nope"]
)
def test_unsupported_limits_url_is_a_config_error(url: str) -> None:
    """The message lists the accepted URL forms."""
    with pytest.raises(ConfigError, match=r"memory:// or redis://"):
        Limiter(_settings(limits_url=url))


def test_config_error_never_echoes_a_password() -> None:
    """Credentials in a rejected URL stay out of the message."""
    with pytest.raises(ConfigError) as caught:
        Limiter(_settings(limits_url="mongodb://user:hunter2@db:27017"))
    assert "hunter2" not in str(caught.value)
