"""Advertised policies are windows (issue 19 item 2), guard level (fake clock): a ``RateLimit-Policy``
over a longer window than ours binds as a learned window until it expires, every entry of a list
binds, and a tighter one is warned once, naming both."""

from __future__ import annotations

from datetime import timedelta

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.policy import quota
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from tests.reliability.test_shared_state import T0, Clock, Log

DAY = 86_400.0
HOURLY = SyncConfig(source="crm", rate_limit=RateLimitConfig(max_requests=60, window=timedelta(hours=1)))


def answer(policy: str | dict[str, str]) -> Attempt:
    headers = policy if isinstance(policy, dict) else {"RateLimit-Policy": policy}
    return Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200, headers=headers)


def sent_in_a_day(cfg: SyncConfig, policy: str | dict[str, str], log: Log | None = None) -> int:
    """Hourly runs of up to 100 requests for a day, every answer advertising ``policy`` (a
    ``RateLimit-Policy``, or the headers given)."""
    store, clock, sent = InMemoryStateStore(), Clock(), 0
    for hour in range(24):
        clock.now = T0 + hour * 3600.0
        guard = SourceGuard(cfg, store, clock=clock, log=log if log is not None else Log(), writer=f"r{hour}")
        for _ in range(100):
            if not guard.admit().allowed:
                break
            clock.now += 1.0
            guard.record(answer(policy))
            sent += 1
        guard.finish({})
    return sent


BASELINE = sent_in_a_day(HOURLY, "")
"""What the hourly config alone sends in the day (each run finds the last one's slots still held)."""


def test_policies_lists_every_entry_with_a_window() -> None:
    assert quota.policies('"burst";q=10;w=1, "daily";q=100;w=86400') == ((10, 1.0), (100, DAY))
    assert quota.policies("100;w=60, 5000") == ((100, 60.0),) and quota.policies(None) == ()


def test_a_day_policy_binds_over_an_hourly_config() -> None:
    # before: the hourly config's count (hundreds), whatever the API said about its day
    log = Log()
    assert BASELINE > 500
    assert sent_in_a_day(HOURLY, "100;w=86400", log) == 100
    warned = [m for m in log if "advertises 100 requests per 86400s" in m]
    assert len(warned) == 2 and "rate_limit 60 per 3600s allows 1440" in warned[0]  # once per sync that sent


def test_every_entry_of_a_policy_list_binds() -> None:
    assert sent_in_a_day(HOURLY, "30;w=1, 200;w=86400") == 200


def test_a_looser_policy_changes_nothing_and_is_not_warned() -> None:
    log = Log()
    assert sent_in_a_day(HOURLY, "5000;w=86400", log) == BASELINE
    assert not [m for m in log if "advertises" in m]


def test_a_learned_window_expires_and_is_kept_in_the_state() -> None:
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(HOURLY, store, clock=clock, log=Log(), writer="r")
    assert guard.admit().allowed
    guard.record(answer("3;w=86400"))
    guard.finish({})
    stored = SourceState.from_json(store.raw[variable_key("crm")], "crm")
    assert stored.learned_windows == ((DAY, 3, T0 + DAY),)
    clock.now = T0 + DAY + 1  # expired: only the config binds
    assert SourceGuard(HOURLY, store, clock=clock, log=Log(), writer="s").further_windows(clock.now) == ()


def test_a_config_that_does_not_learn_ignores_advertised_windows() -> None:
    cfg = HOURLY.replace(rate_limit=RateLimitConfig(max_requests=60, learn_from_headers=False))
    assert sent_in_a_day(cfg, "100;w=86400") == BASELINE


def test_x_ratelimit_headers_of_a_named_window_bind_too() -> None:
    # Kong's form names the window in the header; the draft's list form in the limit header's items
    log = Log()
    kong = {"X-RateLimit-Limit-Day": "100", "X-RateLimit-Remaining-Day": "1"}
    assert sent_in_a_day(HOURLY, kong, log) == 100
    warned = [m for m in log if "advertises 100 requests per 86400s (X-RateLimit-Limit-Day)" in m]
    assert len(warned) == 2 and "rate_limit 60 per 3600s allows 1440" in warned[0]
    assert sent_in_a_day(HOURLY, {"X-RateLimit-Limit": "60, 60;w=3600, 150;window=86400"}) == 150


def test_a_bare_x_ratelimit_limit_is_not_a_learned_window() -> None:
    assert sent_in_a_day(HOURLY, {"X-RateLimit-Limit": "100"}) == BASELINE


def test_a_bare_x_ratelimit_limit_binds_over_the_window_the_config_names() -> None:
    # GitHub's form: X-RateLimit-Limit with no window in the headers; its documented window is configured
    per_minute = RateLimitConfig(
        max_requests=100, window=timedelta(minutes=1), advertised_window=timedelta(days=1)
    )
    cfg = HOURLY.replace(rate_limit=per_minute)
    log = Log()
    assert sent_in_a_day(cfg, {"X-RateLimit-Limit": "150", "X-RateLimit-Remaining": "149"}, log) == 150
    assert [
        m for m in log if "150 requests per 86400s (X-RateLimit-Limit, rate_limit.advertised_window)" in m
    ]
    unnamed = cfg.replace(rate_limit=RateLimitConfig(max_requests=100, window=timedelta(minutes=1)))
    assert sent_in_a_day(unnamed, {"X-RateLimit-Limit": "150"}) == 24 * 100
