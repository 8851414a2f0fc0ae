"""rate_limit as a list of windows (issue 19 item 1): parsed into the shortest window plus
``extra_windows``; the same window twice or a contradiction refused naming the field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.config.windows import WindowLimit
from airflow_sync_provider.exceptions import SyncConfigError

HUBSPOT = [{"max_requests": 250000, "window": "1d"}, {"max_requests": 100, "window": "10s"}]


def test_a_list_is_the_shortest_window_plus_the_longer_ones() -> None:
    config = SyncConfig.from_dict({"source": "crm", "rate_limit": HUBSPOT})
    assert config.rate_limit == RateLimitConfig(
        max_requests=100,
        window=timedelta(seconds=10),
        extra_windows=(WindowLimit(max_requests=250_000, window=timedelta(days=1)),),
    )
    assert SyncConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["rate_limit"]["extra_windows"] == [{"max_requests": 250000, "window": "1d"}]


def test_a_single_mapping_is_unchanged() -> None:
    config = SyncConfig.from_dict({"source": "crm", "rate_limit": {"max_requests": 5, "window": "1m"}})
    assert config.rate_limit == RateLimitConfig(max_requests=5, window=timedelta(minutes=1))
    assert config.rate_limit.extra_windows == ()


def test_the_shortest_entry_may_carry_the_other_settings() -> None:
    windows = [
        {"max_requests": 10, "window": "1s", "safety_margin": "50ms"},
        {"max_requests": 600, "window": "1h"},
    ]
    limit = SyncConfig.from_dict({"source": "crm", "rate_limit": windows}).rate_limit
    assert (limit.safety_margin, limit.extra_windows[0].max_requests) == (timedelta(milliseconds=50), 600)


@pytest.mark.parametrize(
    ("windows", "field", "text"),
    [
        (
            [{"max_requests": 100, "window": "10s"}, {"max_requests": 200, "window": "10s"}],
            "rate_limit[1].window",
            "is given twice (also rate_limit[0])",
        ),
        (
            [{"max_requests": 100, "window": "10s"}, {"max_requests": 50, "window": "1d"}],
            "rate_limit[1].max_requests",
            "contradicts rate_limit[0]: 50 per 1d is at most 100 per 10s",
        ),
        (
            [{"max_requests": 100, "window": "1d"}, {"max_requests": 100, "window": "10s"}],
            "rate_limit[0].max_requests",
            "contradicts rate_limit[1]",
        ),
        (
            [{"max_requests": 100, "window": "10s"}, {"window": "1d"}],
            "rate_limit[1].max_requests",
            "is required",
        ),
        (
            [{"max_requests": 100, "window": "10s"}, {"max_requests": 500, "window": "1d", "adaptive": True}],
            "rate_limit[1].adaptive",
            "is not a known field of a further window",
        ),
        (
            [{"max_requests": 100, "window": "10s"}, {"max_requests": 0, "window": "1d"}],
            "rate_limit[1].max_requests",
            "must be an integer in [1,",
        ),
        ([], "rate_limit", "non-empty list"),
        (["60"], "rate_limit", "must be a mapping or a list of mappings"),
    ],
)
def test_bad_window_lists_are_refused_naming_the_field(windows: list, field: str, text: str) -> None:
    with pytest.raises(SyncConfigError) as error:
        SyncConfig.from_dict({"source": "crm", "rate_limit": windows})
    assert error.value.field == field and text in str(error.value)


def test_extra_windows_given_directly_must_be_longer() -> None:
    with pytest.raises(SyncConfigError, match=r"rate_limit.extra_windows\[0\].window must be longer"):
        RateLimitConfig(
            max_requests=5,
            window=timedelta(hours=1),
            extra_windows=(WindowLimit(max_requests=50, window=timedelta(minutes=1)),),
        )


def test_a_redundant_longer_window_is_accepted_a_dead_shorter_one_is_not() -> None:
    # 10 per 1s admits at most 600 in a minute: the minute window never refuses, but APIs state both
    stated = [{"max_requests": 10, "window": "1s"}, {"max_requests": 600, "window": "1m"}]
    assert SyncConfig.from_dict({"source": "crm", "rate_limit": stated}).rate_limit.extra_windows
    # 100 per 10s never fills under 100 per 1d: one of the two is a mistake (units, swapped limits)
    dead = [{"max_requests": 100, "window": "10s"}, {"max_requests": 100, "window": "1d"}]
    with pytest.raises(
        SyncConfigError, match=r"contradicts rate_limit\[0\]: 100 per 1d is at most 100 per 10s"
    ):
        SyncConfig.from_dict({"source": "crm", "rate_limit": dead})


@pytest.mark.parametrize(("value", "shown"), [("0s", "0ms"), ("32d", "32d"), ("soon", "soon")])
def test_advertised_window_is_a_positive_duration_of_at_most_a_month(value: str, shown: str) -> None:
    with pytest.raises(SyncConfigError) as error:
        SyncConfig.from_dict({"source": "crm", "rate_limit": {"advertised_window": value}})
    assert error.value.field == "rate_limit.advertised_window" and shown in str(error.value)
    github = SyncConfig.from_dict({"source": "crm", "rate_limit": {"advertised_window": "1h"}})
    assert github.rate_limit.advertised_window == timedelta(hours=1)
    assert SyncConfig.from_dict(github.to_dict()) == github
