"""config + durations: defaults, validation messages, the dict/YAML form and its round trip."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import timedelta

import pytest

from airflow_sync_provider.config import (
    DEFAULT_MAX_RESET_TIMEOUT,
    DEFAULT_SYNC_CONFIGS,
    BackoffConfig,
    CircuitBreakerConfig,
    RateLimitConfig,
    SyncConfig,
)
from airflow_sync_provider.config.durations import format_duration, parse_duration
from airflow_sync_provider.exceptions import SyncConfigError, SyncProviderError

S = timedelta(seconds=1)

DEFAULT_TABLE = [
    ("airdrops", "0 * * * *", 60),
    ("airdrops_upcoming", "0 */4 * * *", 15),
    ("quests", "0 * * * *", 60),
    ("yield", "0 */2 * * *", 30),
    ("points", "0 0 * * *", 10),
    ("sponsored", "*/5 * * * *", 120),
    ("community", "0 * * * *", 30),
]


# --- defaults ---------------------------------------------------------------------------------------


def test_default_sources_are_exactly_the_seven_of_the_design():
    assert list(DEFAULT_SYNC_CONFIGS) == [source for source, _, _ in DEFAULT_TABLE]


@pytest.mark.parametrize(("source", "schedule", "per_hour"), DEFAULT_TABLE)
def test_default_table(source, schedule, per_hour):
    config = DEFAULT_SYNC_CONFIGS[source]
    assert config.source == source
    assert config.schedule == schedule
    assert config.rate_limit == RateLimitConfig(max_requests=per_hour, window=timedelta(hours=1))
    assert config.circuit_breaker.failure_threshold == 5
    assert config.backoff.initial_delay == timedelta(seconds=1)
    assert config.backoff.max_delay == timedelta(seconds=60)
    assert config.backoff.multiplier == 2
    assert config.backoff.jitter_factor == 0.1
    assert config.backoff.strategy == "proportional"
    assert config.endpoint == f"/{source}"
    assert config.conn_id == "sync_default"
    assert config.pool == f"sync_{source}"
    assert config.variable_key == f"sync_state_{source}"


def test_default_field_values():
    config = SyncConfig(source="demo")
    assert config.endpoint == "/demo"
    assert config.schedule == "0 * * * *"
    assert config.rate_limit == RateLimitConfig(max_requests=60, window=timedelta(hours=1))
    assert config.backoff == BackoffConfig(
        initial_delay=S, max_delay=60 * S, multiplier=2.0, jitter_factor=0.1, strategy="proportional"
    )
    assert config.circuit_breaker == CircuitBreakerConfig(
        failure_threshold=5,
        reset_timeout=timedelta(minutes=5),
        half_open_max_attempts=1,
        reset_multiplier=2.0,
        max_reset_timeout=None,
    )
    assert config.circuit_breaker.reset_timeout_cap == timedelta(minutes=50)
    assert config.timeout == 30 * S
    assert config.max_retries == 3
    assert config.max_wait == timedelta(minutes=5)
    assert config.when_blocked == "skipped"


def test_airdrops_to_dict_is_the_documented_yaml_form():
    data = DEFAULT_SYNC_CONFIGS["airdrops"].to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(SyncConfig)}
    documented = {
        "source": "airdrops",
        "endpoint": "/airdrops",
        "schedule": "0 * * * *",
        "rate_limit": {
            "max_requests": 60,
            "window": "1h",
            "safety_margin": None,
            "learn_from_headers": True,
            "remaining_header": None,
            "reset_header": None,
            "reset_is": "auto",
            "max_learned_wait": None,
            "adaptive": False,
            "min_requests": 1,
            "adaptive_decrease": 0.7,
            "advertised_window": None,
        },
        "backoff": {
            "initial_delay": "1s",
            "max_delay": "1m",
            "multiplier": 2.0,
            "jitter_factor": 0.1,
            "strategy": "proportional",
        },
        "circuit_breaker": {
            "failure_threshold": 5,
            "reset_timeout": "5m",
            "half_open_max_attempts": 1,
            "reset_multiplier": 2.0,
            "max_reset_timeout": None,
        },
        "timeout": "30s",
        "max_retries": 3,
        "max_wait": "5m",
        "conn_id": "sync_default",
        "items_key": "items",
        "next_cursor_field": "next_cursor",
        "cursor_param": "cursor",
        "max_pages": 100,
        "max_response_bytes": 5 * 1024 * 1024,
        "max_sync_duration": "30m",
        "defer_after": "5s",
        "when_blocked": "skipped",
    }
    assert {key: data[key] for key in documented} == documented


def test_default_mapping_is_read_only():
    with pytest.raises(TypeError):
        DEFAULT_SYNC_CONFIGS["evil"] = SyncConfig(source="evil")  # type: ignore[index]


@pytest.mark.parametrize(
    ("obj", "attr"),
    [
        (SyncConfig(source="a"), "source"),
        (SyncConfig(source="a"), "endpoint"),
        (RateLimitConfig(), "max_requests"),
        (BackoffConfig(), "jitter_factor"),
        (CircuitBreakerConfig(), "failure_threshold"),
        (DEFAULT_SYNC_CONFIGS["points"], "max_retries"),
    ],
)
def test_configs_are_frozen(obj, attr):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attr, 1)


def test_endpoint_default_and_explicit():
    assert SyncConfig(source="yield").endpoint == "/yield"
    assert SyncConfig(source="yield", endpoint="/v2/yield?x=1").endpoint == "/v2/yield?x=1"
    assert SyncConfig(source="yield").replace(max_retries=0).endpoint == "/yield"


# --- validation -------------------------------------------------------------------------------------


BAD_VALUES = [
    # (what to build, kwargs, dotted field, bad value)
    (RateLimitConfig, {"max_requests": -1}, "rate_limit.max_requests", -1),
    (RateLimitConfig, {"max_requests": 0}, "rate_limit.max_requests", 0),
    (RateLimitConfig, {"max_requests": True}, "rate_limit.max_requests", True),
    (RateLimitConfig, {"max_requests": "60"}, "rate_limit.max_requests", "60"),
    (RateLimitConfig, {"max_requests": 10_001}, "rate_limit.max_requests", 10_001),
    (RateLimitConfig, {"max_requests": 1.5}, "rate_limit.max_requests", 1.5),
    (RateLimitConfig, {"window": timedelta(0)}, "rate_limit.window", timedelta(0)),
    (RateLimitConfig, {"window": 3600}, "rate_limit.window", 3600),
    (BackoffConfig, {"jitter_factor": 2}, "backoff.jitter_factor", 2),
    (BackoffConfig, {"jitter_factor": -0.1}, "backoff.jitter_factor", -0.1),
    (BackoffConfig, {"jitter_factor": float("nan")}, "backoff.jitter_factor", float("nan")),
    (BackoffConfig, {"multiplier": 0.5}, "backoff.multiplier", 0.5),
    (BackoffConfig, {"multiplier": False}, "backoff.multiplier", False),
    (
        BackoffConfig,
        {"initial_delay": 10 * S, "max_delay": 5 * S},
        "backoff.max_delay",
        5 * S,
    ),
    (BackoffConfig, {"initial_delay": -S}, "backoff.initial_delay", -S),
    (BackoffConfig, {"strategy": "x"}, "backoff.strategy", "x"),
    (CircuitBreakerConfig, {"failure_threshold": 0}, "circuit_breaker.failure_threshold", 0),
    (CircuitBreakerConfig, {"half_open_max_attempts": 0}, "circuit_breaker.half_open_max_attempts", 0),
    (CircuitBreakerConfig, {"reset_timeout": timedelta(0)}, "circuit_breaker.reset_timeout", timedelta(0)),
    (CircuitBreakerConfig, {"reset_multiplier": 0.5}, "circuit_breaker.reset_multiplier", 0.5),
    (CircuitBreakerConfig, {"reset_multiplier": True}, "circuit_breaker.reset_multiplier", True),
    (CircuitBreakerConfig, {"reset_multiplier": math.inf}, "circuit_breaker.reset_multiplier", math.inf),
    (
        CircuitBreakerConfig,
        {"reset_timeout": timedelta(minutes=10), "max_reset_timeout": timedelta(minutes=5)},
        "circuit_breaker.max_reset_timeout",
        timedelta(minutes=5),
    ),
    (
        CircuitBreakerConfig,
        {"max_reset_timeout": timedelta(0)},
        "circuit_breaker.max_reset_timeout",
        timedelta(0),
    ),
    (CircuitBreakerConfig, {"max_reset_timeout": "1h"}, "circuit_breaker.max_reset_timeout", "1h"),
    (SyncConfig, {"source": "Air"}, "source", "Air"),
    (SyncConfig, {"source": "a b"}, "source", "a b"),
    (SyncConfig, {"source": ""}, "source", ""),
    (SyncConfig, {"source": "x" * 70}, "source", "x" * 70),
    (SyncConfig, {"source": "../x"}, "source", "../x"),
    (SyncConfig, {"source": "airdrops\n", "endpoint": "/a"}, "source", "airdrops\n"),
    (SyncConfig, {"source": "1st"}, "source", "1st"),
    (SyncConfig, {"source": None}, "source", None),
    (SyncConfig, {"source": "a", "endpoint": "http://evil/x"}, "endpoint", "http://evil/x"),
    (SyncConfig, {"source": "a", "endpoint": "//evil/x"}, "endpoint", "//evil/x"),
    (SyncConfig, {"source": "a", "endpoint": "no-slash"}, "endpoint", "no-slash"),
    (SyncConfig, {"source": "a", "endpoint": "/x y"}, "endpoint", "/x y"),
    (
        SyncConfig,
        {"source": "a", "endpoint": "/redirect?to=https://evil"},
        "endpoint",
        "/redirect?to=https://evil",
    ),
    (SyncConfig, {"source": "a", "timeout": timedelta(0)}, "timeout", timedelta(0)),
    (SyncConfig, {"source": "a", "max_retries": -1}, "max_retries", -1),
    (SyncConfig, {"source": "a", "max_retries": 101}, "max_retries", 101),
    (SyncConfig, {"source": "a", "when_blocked": "maybe"}, "when_blocked", "maybe"),
    (SyncConfig, {"source": "a", "schedule": "every hour"}, "schedule", "every hour"),
    (SyncConfig, {"source": "a", "schedule": "a b c d e"}, "schedule", "a b c d e"),
    (SyncConfig, {"source": "a", "schedule": timedelta(0)}, "schedule", timedelta(0)),
    (SyncConfig, {"source": "a", "schedule": 60}, "schedule", 60),
    (SyncConfig, {"source": "a", "conn_id": "a b"}, "conn_id", "a b"),
    (SyncConfig, {"source": "a", "conn_id": "conn\n"}, "conn_id", "conn\n"),
    (SyncConfig, {"source": "a", "conn_id": ""}, "conn_id", ""),
    (SyncConfig, {"source": "a", "rate_limit": {"max_requests": 5}}, "rate_limit", {"max_requests": 5}),
    (SyncConfig, {"source": "a", "max_wait": -S}, "max_wait", -S),
    (SyncConfig, {"source": "a", "max_pages": 0}, "max_pages", 0),
    (SyncConfig, {"source": "a", "items_key": ""}, "items_key", ""),
    (SyncConfig, {"source": "a", "max_response_bytes": 100}, "max_response_bytes", 100),
    (RateLimitConfig, {"learn_from_headers": "yes"}, "rate_limit.learn_from_headers", "yes"),
    (RateLimitConfig, {"remaining_header": "x left"}, "rate_limit.remaining_header", "x left"),
    (RateLimitConfig, {"remaining_header": ""}, "rate_limit.remaining_header", ""),
    (RateLimitConfig, {"reset_header": "x-reset"}, "rate_limit.reset_header", "x-reset"),
    (RateLimitConfig, {"reset_is": "minutes"}, "rate_limit.reset_is", "minutes"),
    (RateLimitConfig, {"max_learned_wait": timedelta(0)}, "rate_limit.max_learned_wait", timedelta(0)),
    (
        RateLimitConfig,
        {"max_learned_wait": timedelta(days=400)},
        "rate_limit.max_learned_wait",
        timedelta(days=400),
    ),
    (RateLimitConfig, {"max_learned_wait": 60}, "rate_limit.max_learned_wait", 60),
]


@pytest.mark.parametrize(
    ("kind", "kwargs", "field", "value"),
    BAD_VALUES,
    ids=[f"{field}={value!r}"[:60] for _, _, field, value in BAD_VALUES],
)
def test_bad_values_name_the_field_and_the_value(kind, kwargs, field, value):
    with pytest.raises(ValueError) as info:
        kind(**kwargs)
    err = info.value
    assert isinstance(err, SyncConfigError)
    assert isinstance(err, SyncProviderError)
    message = str(err)
    assert message.startswith(f"{field} ")
    assert message.endswith(f", got {value!r}")
    assert err.field == field


def test_documented_message_verbatim():
    with pytest.raises(ValueError) as info:
        BackoffConfig(jitter_factor=2)
    assert str(info.value) == "backoff.jitter_factor must be in [0, 1], got 2"


def test_max_delay_message_names_initial_delay():
    with pytest.raises(SyncConfigError, match=r"must be >= backoff.initial_delay \(0:00:10\)"):
        BackoffConfig(initial_delay=10 * S, max_delay=5 * S)


@pytest.mark.parametrize(
    "schedule",
    [
        "0 * * * *",
        "*/5 * * * *",
        "0 0 * * MON-FRI",
        "0 0 1 * * 2026",
        "@hourly",
        "@daily",
        None,
        timedelta(minutes=5),
    ],
)
def test_good_schedules(schedule):
    assert SyncConfig(source="a", schedule=schedule).schedule == schedule


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        (RateLimitConfig, {"max_requests": 1, "window": timedelta(milliseconds=1)}),
        (BackoffConfig, {"jitter_factor": 0}),
        (BackoffConfig, {"jitter_factor": 1}),
        (BackoffConfig, {"multiplier": 1}),
        (BackoffConfig, {"multiplier": 100}),
        (BackoffConfig, {"initial_delay": timedelta(0), "max_delay": timedelta(0)}),
        (CircuitBreakerConfig, {"failure_threshold": 1, "half_open_max_attempts": 1}),
        (CircuitBreakerConfig, {"reset_multiplier": 1, "max_reset_timeout": timedelta(minutes=5)}),
        (CircuitBreakerConfig, {"reset_multiplier": 100}),
    ],
)
def test_boundary_values_are_accepted(kind, kwargs):
    config = kind(**kwargs)
    for key, value in kwargs.items():
        assert getattr(config, key) == value


def test_max_retries_bounds_accepted():
    assert SyncConfig(source="a", max_retries=0).max_retries == 0
    assert SyncConfig(source="a", max_retries=100).max_retries == 100


# --- from_dict --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "attr", "expected"),
    [
        ({"timeout": "500ms"}, "timeout", timedelta(milliseconds=500)),
        ({"timeout": "30s"}, "timeout", timedelta(seconds=30)),
        ({"max_wait": "5m"}, "max_wait", timedelta(minutes=5)),
        ({"max_sync_duration": "1h"}, "max_sync_duration", timedelta(hours=1)),
        ({"max_sync_duration": "1d"}, "max_sync_duration", timedelta(days=1)),
        ({"defer_after": " 2.5s "}, "defer_after", timedelta(seconds=2.5)),
        ({"timeout": 45}, "timeout", timedelta(seconds=45)),
        ({"timeout": 0.25}, "timeout", timedelta(milliseconds=250)),
        ({"schedule": "30m"}, "schedule", timedelta(minutes=30)),
        ({"schedule": "@daily"}, "schedule", "@daily"),
        ({"schedule": None}, "schedule", None),
        ({"endpoint": "/v2/x"}, "endpoint", "/v2/x"),
        ({"max_retries": 7}, "max_retries", 7),
    ],
)
def test_from_dict_scalars(data, attr, expected):
    config = SyncConfig.from_dict({"source": "a", **data})
    assert getattr(config, attr) == expected


def test_from_dict_nested_durations_and_numbers():
    config = SyncConfig.from_dict(
        {
            "source": "a",
            "rate_limit": {"max_requests": 5, "window": "1d"},
            "backoff": {"initial_delay": 2, "max_delay": "2m", "multiplier": 3},
            "circuit_breaker": {"reset_timeout": "500ms", "failure_threshold": 2},
        }
    )
    assert config.rate_limit == RateLimitConfig(max_requests=5, window=timedelta(days=1))
    assert config.backoff == BackoffConfig(
        initial_delay=2 * S, max_delay=120 * S, multiplier=3, jitter_factor=0.1
    )
    assert config.circuit_breaker == CircuitBreakerConfig(
        failure_threshold=2, reset_timeout=timedelta(milliseconds=500), half_open_max_attempts=1
    )


def test_from_dict_growing_open_wait_fields():
    """``reset_multiplier`` and ``max_reset_timeout`` from YAML; a cap below reset_timeout names the field."""
    config = SyncConfig.from_dict(
        {"source": "a", "circuit_breaker": {"reset_multiplier": 3, "max_reset_timeout": "6h"}}
    )
    cb = config.circuit_breaker
    assert (cb.reset_multiplier, cb.max_reset_timeout, cb.reset_timeout_cap) == (
        3,
        6 * 3600 * S,
        6 * 3600 * S,
    )
    assert config.to_dict()["circuit_breaker"]["max_reset_timeout"] == "6h"
    assert SyncConfig.from_dict(config.to_dict()) == config
    unset = SyncConfig.from_dict({"source": "a", "circuit_breaker": {"max_reset_timeout": None}})
    assert unset.circuit_breaker.max_reset_timeout is None
    with pytest.raises(SyncConfigError, match=r"^circuit_breaker\.max_reset_timeout must be >= "):
        SyncConfig.from_dict(
            {"source": "a", "circuit_breaker": {"reset_timeout": "1h", "max_reset_timeout": "5m"}}
        )
    with pytest.raises(SyncConfigError, match=r"^circuit_breaker\.max_reset_timeout must be a duration"):
        SyncConfig.from_dict({"source": "a", "circuit_breaker": {"max_reset_timeout": "soon"}})


def test_unset_cap_is_the_default_cap_or_reset_timeout_when_longer():
    """A long ``reset_timeout`` without a cap stays valid: the cap is never below it."""
    assert CircuitBreakerConfig().reset_timeout_cap == DEFAULT_MAX_RESET_TIMEOUT
    long = CircuitBreakerConfig(reset_timeout=timedelta(hours=12))
    assert long.reset_timeout_cap == timedelta(hours=12)


def test_from_dict_merges_nested_sections_onto_base():
    base = SyncConfig(
        source="points",
        schedule="0 0 * * *",
        rate_limit=RateLimitConfig(max_requests=10),
        backoff=BackoffConfig(initial_delay=2 * S, max_delay=30 * S, multiplier=3, jitter_factor=0.2),
        max_retries=5,
    )
    merged = SyncConfig.from_dict({"backoff": {"max_delay": "2m"}, "timeout": "10s"}, base=base)
    assert merged.backoff == BackoffConfig(
        initial_delay=2 * S, max_delay=120 * S, multiplier=3, jitter_factor=0.2, strategy="proportional"
    )
    assert merged.rate_limit == RateLimitConfig(max_requests=10, window=timedelta(hours=1))
    assert merged.timeout == 10 * S
    assert merged.max_retries == 5
    assert merged.schedule == "0 0 * * *"
    assert merged.source == "points"
    assert merged == base.replace(
        backoff=dataclasses.replace(base.backoff, max_delay=120 * S), timeout=10 * S
    )


def test_from_dict_onto_a_default_keeps_its_rate_limit():
    base = DEFAULT_SYNC_CONFIGS["sponsored"]
    merged = SyncConfig.from_dict({"source": "sponsored", "rate_limit": {"window": "30m"}}, base=base)
    assert merged.rate_limit == RateLimitConfig(max_requests=120, window=timedelta(minutes=30))
    assert merged.schedule == "*/5 * * * *"


def test_from_dict_without_base_uses_section_defaults():
    config = SyncConfig.from_dict({"source": "a", "backoff": {"jitter_factor": 0.5}})
    assert config.backoff == BackoffConfig(jitter_factor=0.5)


def test_from_dict_accepts_section_objects():
    section = RateLimitConfig(max_requests=3)
    assert SyncConfig.from_dict({"source": "a", "rate_limit": section}).rate_limit is section


@pytest.mark.parametrize(
    ("data", "base", "field", "message_part"),
    [
        ({"source": "a", "colour": "red"}, None, "colour", "colour is not a known field"),
        ({"source": "a", "backoff": {"foo": 1}}, None, "backoff.foo", "backoff.foo is not a known field"),
        (
            {"source": "a", "circuit_breaker": {"threshold": 3}},
            None,
            "circuit_breaker.threshold",
            "circuit_breaker.threshold is not a known field",
        ),
        (
            {"source": "other"},
            DEFAULT_SYNC_CONFIGS["quests"],
            "source",
            "source must equal 'quests', got 'other'",
        ),
        ({}, None, "source", "source is required, got None"),
        ({"timeout": "1h"}, None, "source", "source is required"),
        ({"source": "a", "backoff": 5}, None, "backoff", "backoff must be a mapping, got 5"),
        (
            {"source": "a", "rate_limit": ["60"]},
            None,
            "rate_limit",
            "rate_limit must be a mapping or a list of mappings, got ['60']",
        ),
        (["source", "a"], None, "config", "config must be a mapping, got ['source', 'a']"),
        ({"source": "a", "timeout": "soon"}, None, "timeout", "timeout must be a duration like"),
        ({"source": "a", "timeout": -1}, None, "timeout", "timeout must be a finite, non-negative number"),
        ({"source": "a", "backoff": {"max_delay": "1 hour"}}, None, "backoff.max_delay", "got '1 hour'"),
        ({"source": "a", "rate_limit": {"window": "0s"}}, None, "rate_limit.window", "must be a positive"),
        ({"source": "a", "timeout": "9999999999d"}, None, "timeout", "got '9999999999d'"),
        ({"source": "a", "max_wait": 1e20}, None, "max_wait", "got 1e+20"),
    ],
)
def test_from_dict_errors_name_the_key(data, base, field, message_part):
    with pytest.raises(SyncConfigError) as info:
        SyncConfig.from_dict(data, base=base)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert message_part in str(info.value)


@pytest.mark.parametrize("source", list(DEFAULT_SYNC_CONFIGS))
def test_to_dict_from_dict_round_trip_for_every_default(source):
    config = DEFAULT_SYNC_CONFIGS[source]
    data = config.to_dict()
    assert SyncConfig.from_dict(data) == config
    assert SyncConfig.from_dict(data, base=config) == config
    assert SyncConfig.from_dict(data).to_dict() == data


def test_round_trip_of_a_custom_config():
    config = SyncConfig(
        source="custom_1",
        endpoint="/api/v1/things",
        schedule=timedelta(minutes=90),
        rate_limit=RateLimitConfig(max_requests=7, window=timedelta(milliseconds=1500)),
        backoff=BackoffConfig(
            initial_delay=timedelta(milliseconds=250), max_delay=timedelta(hours=2), strategy="decorrelated"
        ),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, reset_timeout=timedelta(days=2)),
        timeout=timedelta(seconds=0.5),
        max_wait=timedelta(0),
        when_blocked="failed",
        conn_id="my.conn-1",
    )
    data = config.to_dict()
    assert data["schedule"] == "90m"
    assert {k: data["rate_limit"][k] for k in ("max_requests", "window")} == {
        "max_requests": 7,
        "window": "1500ms",
    }
    assert data["backoff"]["initial_delay"] == "250ms"
    assert data["backoff"]["max_delay"] == "2h"
    assert data["circuit_breaker"]["reset_timeout"] == "2d"
    assert data["max_wait"] == "0ms"
    assert SyncConfig.from_dict(data) == config


# --- durations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0ms"),
        (timedelta(milliseconds=1), "1ms"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=90), "90s"),
        (timedelta(seconds=3600), "1h"),
        (timedelta(minutes=5), "5m"),
        (timedelta(hours=36), "36h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=400), "400d"),
        (timedelta(days=1, seconds=1), "86401s"),
    ],
)
def test_format_and_parse_duration_round_trip(value, text):
    assert format_duration(value) == text
    assert parse_duration(text, "f") == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        (" 1.5 h ", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (0, timedelta(0)),
        (12, timedelta(seconds=12)),
        (0.001, timedelta(milliseconds=1)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_parse_duration(raw, expected):
    assert parse_duration(raw, "f") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "",
        "5",
        "-5s",
        "5 minutes",
        "1e3s",
        "1.2.3s",
        "5M",
        "5sec",
        None,
        True,
        False,
        -1,
        float("nan"),
        float("inf"),
        [],
        "9999999999d",
        1e20,
        "1" * 400 + "s",
    ],
)
def test_parse_duration_errors(raw):
    with pytest.raises(SyncConfigError) as info:
        parse_duration(raw, "backoff.max_delay")
    assert info.value.field == "backoff.max_delay"
    assert str(info.value).startswith("backoff.max_delay ")
    assert str(info.value).endswith(f"got {raw!r}")


def test_safety_margin_defaults_to_1s_at_most_a_tenth_of_the_window() -> None:
    assert RateLimitConfig().margin == timedelta(seconds=1)
    assert RateLimitConfig(window=timedelta(seconds=2)).margin == timedelta(milliseconds=200)
    assert RateLimitConfig(safety_margin=timedelta(0)).margin == timedelta(0)
    parsed = SyncConfig.from_dict({"source": "a", "rate_limit": {"safety_margin": "500ms"}})
    assert parsed.rate_limit.margin == timedelta(milliseconds=500)
    assert SyncConfig.from_dict(parsed.to_dict()) == parsed
    assert SyncConfig(source="a").to_dict()["rate_limit"]["safety_margin"] is None  # unset: the default


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(seconds=-1), "rate_limit.safety_margin must be a timedelta >= 0, got"),
        (
            timedelta(hours=1),
            "rate_limit.safety_margin must be shorter than rate_limit.window (1:00:00), got",
        ),
        (5, "rate_limit.safety_margin must be a timedelta >= 0, got 5"),
    ],
)
def test_a_bad_safety_margin_is_named(value: object, expected: str) -> None:
    with pytest.raises(SyncConfigError, match=re.escape(expected)):
        RateLimitConfig(safety_margin=value)  # type: ignore[arg-type]


def test_quota_header_fields_from_yaml_form():
    config = SyncConfig.from_dict(
        {
            "source": "a",
            "rate_limit": {"remaining_header": "x-app-ratelimit-remaining", "reset_header": "x-app-reset"},
        }
    )
    assert config.rate_limit.learn_from_headers is True
    assert config.rate_limit.remaining_header == "x-app-ratelimit-remaining"
    assert config.rate_limit.reset_is == "auto"
    off = SyncConfig.from_dict(
        {"source": "a", "rate_limit": {"learn_from_headers": False, "reset_is": "epoch"}}
    )
    assert (off.rate_limit.learn_from_headers, off.rate_limit.reset_is) == (False, "epoch")


def test_max_learned_wait_defaults_to_the_larger_of_the_window_and_an_hour() -> None:
    assert RateLimitConfig().learned_wait_cap == timedelta(hours=1)
    assert RateLimitConfig(window=timedelta(minutes=1)).learned_wait_cap == timedelta(hours=1)
    assert RateLimitConfig(window=timedelta(hours=6)).learned_wait_cap == timedelta(hours=6)
    limit = SyncConfig.from_dict({"source": "a", "rate_limit": {"max_learned_wait": "10m"}}).rate_limit
    assert limit.learned_wait_cap == timedelta(minutes=10)
    with pytest.raises(ValueError, match=r"rate_limit.max_learned_wait must be .*got 'soon'"):
        SyncConfig.from_dict({"source": "a", "rate_limit": {"max_learned_wait": "soon"}})
