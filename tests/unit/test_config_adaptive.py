"""Parse-time checks of the adaptive rate-limit settings (issue 19, items 4 and 6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.config import adaptive as adaptive_config
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.policy import adaptive


def test_defaults_keep_adaptive_off() -> None:
    limit = RateLimitConfig()
    assert (limit.adaptive, limit.min_requests, limit.adaptive_decrease) == (False, 1, 0.7)


def test_the_yaml_form_reads_and_writes_the_adaptive_fields() -> None:
    data = {"source": "hidden", "rate_limit": {"max_requests": 600, "window": "1m", "adaptive": True}}
    data["rate_limit"] |= {"min_requests": 10, "adaptive_decrease": 0.5}
    config = SyncConfig.from_dict(data)
    assert config.rate_limit == RateLimitConfig(
        max_requests=600, window=timedelta(minutes=1), adaptive=True, min_requests=10, adaptive_decrease=0.5
    )
    assert SyncConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"adaptive": "yes"}, "rate_limit.adaptive", "yes"),
        ({"adaptive": 1}, "rate_limit.adaptive", 1),
        ({"min_requests": 0}, "rate_limit.min_requests", 0),
        ({"min_requests": -3}, "rate_limit.min_requests", -3),
        ({"min_requests": 2.5}, "rate_limit.min_requests", 2.5),
        ({"min_requests": True}, "rate_limit.min_requests", True),
        ({"min_requests": "5"}, "rate_limit.min_requests", "5"),
        ({"adaptive_decrease": 0}, "rate_limit.adaptive_decrease", 0),
        ({"adaptive_decrease": 1.0}, "rate_limit.adaptive_decrease", 1.0),
        ({"adaptive_decrease": 0.05}, "rate_limit.adaptive_decrease", 0.05),
        ({"adaptive_decrease": float("nan")}, "rate_limit.adaptive_decrease", float("nan")),
        ({"adaptive_decrease": True}, "rate_limit.adaptive_decrease", True),
        ({"adaptive_decrease": "0.7"}, "rate_limit.adaptive_decrease", "0.7"),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else next(iter(v)),
)
def test_out_of_range_values_are_refused_naming_the_field_and_value(
    changes: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(SyncConfigError) as raised:
        RateLimitConfig(**changes)
    assert raised.value.field == field
    assert str(raised.value).startswith(field) and repr(value) in str(raised.value)


def test_a_floor_above_the_limit_is_refused_naming_both() -> None:
    with pytest.raises(SyncConfigError) as raised:
        RateLimitConfig(max_requests=60, min_requests=61, adaptive=True)
    message = str(raised.value)
    assert raised.value.field == "rate_limit.min_requests"
    assert "rate_limit.max_requests (60)" in message and message.endswith("got 61")


def test_a_floor_above_the_limit_is_refused_from_yaml_too() -> None:
    with pytest.raises(
        SyncConfigError, match=r"rate_limit\.min_requests must be <= rate_limit\.max_requests \(5\)"
    ):
        SyncConfig.from_dict({"source": "a", "rate_limit": {"max_requests": 5, "min_requests": 6}})


def test_a_floor_equal_to_the_limit_is_allowed() -> None:
    assert RateLimitConfig(max_requests=5, min_requests=5).min_requests == 5


def test_the_config_gives_the_chosen_algorithm_its_bounds_and_decrease() -> None:
    limit = RateLimitConfig(
        max_requests=600, window=timedelta(minutes=1), min_requests=10, adaptive_decrease=0.5
    )
    alg = adaptive_config.algorithm_for(limit)
    assert alg.name == adaptive.DEFAULT_ALGORITHM
    assert alg.bounds == adaptive.Bounds(ceiling=600, floor=10, window=60.0)
    state = alg.on_refused(alg.start(0.0), 1.0, sent_at=1.0, in_window=100)
    assert alg.limit(state, 1.0) == 50
    for n in range(30):
        state = alg.on_refused(state, 2.0 + n, sent_at=2.0 + n)
    assert alg.limit(state, 40.0) == 10
