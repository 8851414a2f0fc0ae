"""Learned windows shown (issue 19 items 1, 2): ``describe()`` (``states --json``, the dashboard's API),
the ``states`` table and the attempt line's usage count a window the API advertised like a configured
one, and list each with its limit, length and until when it is trusted."""

from __future__ import annotations

from datetime import timedelta

from airflow_sync_provider.admin.operations import describe
from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.state import learned_windows
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from airflow_sync_provider.state.table import format_states
from tests.reliability.test_shared_state import T0, Clock, Log

DAY = 86_400.0
HOURLY = SyncConfig(source="crm", rate_limit=RateLimitConfig(max_requests=60, window=timedelta(hours=1)))
ANSWER = Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200, headers={"X-RateLimit-Limit-Day": "3"})


def after_two_requests() -> tuple[SourceState, SourceGuard, Clock]:
    """Two requests answered with a day quota of 3, as stored."""
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(HOURLY, store, clock=clock, log=Log(), writer="r")
    for _ in range(2):
        assert guard.admit().allowed
        clock.now += 1.0
        guard.record(ANSWER)
    guard.finish({})
    return SourceState.from_json(store.raw[variable_key("crm")], "crm"), guard, clock


def test_the_fullest_window_may_be_a_learned_one() -> None:
    state, guard, clock = after_two_requests()
    row = describe(state, HOURLY, clock.now)
    assert (row["window_requests"], row["window_max_requests"], row["window_seconds"]) == (2, 3, DAY)
    assert row["learned_windows"] == [
        {"max_requests": 3, "window_seconds": DAY, "requests": 2, "until": T0 + 2 + DAY}
    ]
    assert guard.window_usage() == 2 / 3  # the attempt line and sync.rate_limit.usage


def test_the_states_table_says_which_window_and_lists_the_learned_ones() -> None:
    state, _, clock = after_two_requests()
    line = format_states([describe(state, HOURLY, clock.now)]).splitlines()[2]
    assert " 2/3 per 1d " in line
    assert "2/3 per 1d until 2027-01-16 08:00:02" in line  # T0 + 2 s + a day


def test_an_expired_or_ignored_learned_window_is_not_shown() -> None:
    state, _, clock = after_two_requests()
    expired = describe(state, HOURLY, T0 + DAY + 2)
    assert expired["learned_windows"] == [] and expired["window_seconds"] == 3600.0
    ignoring = HOURLY.replace(rate_limit=RateLimitConfig(max_requests=60, learn_from_headers=False))
    assert learned_windows.shown(state, ignoring, clock.now) == []
    assert describe(state, ignoring, clock.now)["window_max_requests"] == 60
    assert " 2/60 per 1h " in format_states([describe(state, ignoring, clock.now)])


def test_a_configured_window_of_the_same_length_and_a_lower_limit_wins() -> None:
    state, _, clock = after_two_requests()
    day_of_two = SyncConfig.from_dict(
        {
            "source": "crm",
            "rate_limit": [{"max_requests": 1, "window": "1h"}, {"max_requests": 2, "window": "1d"}],
        }
    )
    later = clock.now + 7200  # the hour window is empty again, the day holds both requests
    assert learned_windows.binding(state, day_of_two, later) == ()
    assert describe(state, day_of_two, later)["window_max_requests"] == 2
