"""policy.backoff: exponential base, the three jitter strategies, dispatch and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from airflow_sync_provider.policy.backoff import (
    MAX_RETRY_AFTER_SECONDS,
    decorrelated_jitter,
    exponential_base,
    full_jitter,
    parse_retry_after,
    proportional_jitter,
    retry_delay,
)

DEFAULTS = {"initial": 1.0, "multiplier": 2.0, "cap": 60.0}
NOW = datetime(2026, 10, 21, 7, 0, 0, tzinfo=UTC).timestamp()


# --- exponential base -------------------------------------------------------------------------------


def test_exponential_base_defaults_follow_the_original_design():
    assert [exponential_base(n, **DEFAULTS) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


@pytest.mark.parametrize(
    ("retry", "initial", "multiplier", "cap", "expected"),
    [
        (0, 0.5, 3.0, 100.0, 0.5),
        (3, 0.5, 3.0, 100.0, 13.5),
        (4, 0.5, 3.0, 100.0, 40.5),
        (5, 0.5, 3.0, 100.0, 100.0),
        (7, 2.0, 1.0, 60.0, 2.0),  # multiplier 1: constant
        (3, 0.0, 2.0, 60.0, 0.0),  # no initial delay: no wait
        (2, 5.0, 2.0, 5.0, 5.0),  # cap == initial
    ],
)
def test_exponential_base_values(retry, initial, multiplier, cap, expected):
    assert exponential_base(retry, initial, multiplier, cap) == expected


@pytest.mark.parametrize("retry", [100, 1_024, 1_075, 10_000, 10**9])
def test_exponential_base_does_not_overflow_for_huge_retry(retry):
    assert exponential_base(retry, 1.0, 2.0, 60.0) == 60.0
    assert exponential_base(retry, 1e-6, 100.0, 86_400.0) == 86_400.0


def test_exponential_base_rejects_negative_retry():
    with pytest.raises(ValueError, match="retry must be >= 0, got -1"):
        exponential_base(-1, 1.0, 2.0, 60.0)


# --- proportional jitter (the original design) -------------------------------------------------------


@pytest.mark.parametrize("retry", range(8))
def test_proportional_jitter_stays_within_ten_percent_and_spreads(retry):
    base = [1, 2, 4, 8, 16, 32, 60, 60][retry]
    rng = random.Random(1234 + retry)
    samples = [proportional_jitter(retry, **DEFAULTS, jitter_factor=0.1, rng=rng) for _ in range(10_000)]
    slack = 1e-12 * base
    assert all(base * 0.9 - slack <= s <= base * 1.1 + slack for s in samples)
    # the samples use the whole band, not a sliver of it
    assert min(samples) < base * 0.901
    assert max(samples) > base * 1.099
    assert abs(sum(samples) / len(samples) - base) < base * 0.005


def test_proportional_jitter_zero_factor_is_exactly_the_base():
    rng = random.Random(7)
    assert [proportional_jitter(n, **DEFAULTS, jitter_factor=0.0, rng=rng) for n in range(8)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]


def test_proportional_jitter_full_factor_never_negative():
    rng = random.Random(3)
    samples = [proportional_jitter(2, **DEFAULTS, jitter_factor=1.0, rng=rng) for _ in range(2_000)]
    assert all(0.0 <= s <= 8.0 for s in samples)
    assert min(samples) < 0.1
    assert max(samples) > 7.9


def test_proportional_jitter_is_deterministic_for_a_seed():
    a = [proportional_jitter(n, **DEFAULTS, jitter_factor=0.1, rng=random.Random(42)) for n in range(5)]
    b = [proportional_jitter(n, **DEFAULTS, jitter_factor=0.1, rng=random.Random(42)) for n in range(5)]
    assert a == b
    assert a != [1, 2, 4, 8, 16]


# --- full and decorrelated jitter --------------------------------------------------------------------


@pytest.mark.parametrize("retry", [0, 3, 6, 50])
def test_full_jitter_within_zero_and_base(retry):
    base = exponential_base(retry, **DEFAULTS)
    rng = random.Random(retry)
    samples = [full_jitter(retry, **DEFAULTS, rng=rng) for _ in range(5_000)]
    assert all(0.0 <= s <= base for s in samples)
    assert min(samples) < base * 0.01
    assert max(samples) > base * 0.99


def test_decorrelated_first_wait_is_initial():
    rng = random.Random(0)
    assert decorrelated_jitter(previous=None, initial=1.5, cap=60.0, rng=rng) == 1.5
    assert decorrelated_jitter(previous=0.0, initial=1.5, cap=60.0, rng=rng) == 1.5
    assert decorrelated_jitter(previous=None, initial=90.0, cap=60.0, rng=rng) == 60.0


def test_decorrelated_chain_stays_within_initial_and_three_times_previous():
    rng = random.Random(99)
    initial, cap = 1.0, 60.0
    delays = []
    for _ in range(200):
        previous = None
        for _ in range(30):
            delay = decorrelated_jitter(previous=previous, initial=initial, cap=cap, rng=rng)
            upper = initial if previous is None else min(cap, max(initial, 3 * previous))
            assert initial <= delay <= upper
            delays.append(delay)
            previous = delay
    assert delays.count(cap) > 100  # the cap is reached (and clamps) ...
    assert min(d for d in delays if d != initial) < 1.05  # ... and waits fall back near initial


# --- dispatch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["proportional", "full", "decorrelated"])
def test_retry_delay_dispatches_to_the_strategy(strategy):
    kwargs = {"initial": 1.0, "multiplier": 2.0, "cap": 60.0}
    got = retry_delay(4, strategy=strategy, **kwargs, jitter_factor=0.1, rng=random.Random(5), previous=3.0)
    rng = random.Random(5)
    if strategy == "proportional":
        expected = proportional_jitter(4, **kwargs, jitter_factor=0.1, rng=rng)
        assert 16 * 0.9 <= got <= 16 * 1.1
    elif strategy == "full":
        expected = full_jitter(4, **kwargs, rng=rng)
        assert 0 <= got <= 16
    else:
        expected = decorrelated_jitter(previous=3.0, initial=1.0, cap=60.0, rng=rng)
        assert 1.0 <= got <= 9.0
    assert got == expected


def test_retry_delay_unknown_strategy():
    with pytest.raises(ValueError, match="unknown backoff strategy 'linear'"):
        retry_delay(
            0, strategy="linear", initial=1, multiplier=2, cap=60, jitter_factor=0.1, rng=random.Random()
        )


# --- Retry-After ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("0", 0.0),
        ("007", 7.0),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 1680.0),
        ("Wed, 21 Oct 2026 07:00:00 GMT", 0.0),
        ("Wed, 21 Oct 2026 06:59:59 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Tue, 20 Oct 2026 07:00:00 +0000", 0.0),
        ("Wed, 21 Oct 2026 09:00:00 +0200", 0.0),
        ("Wed, 21 Oct 2026 10:00:30 +0300", 30.0),
        ("99999999999999999999", MAX_RETRY_AFTER_SECONDS),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_SECONDS),
        (str(int(MAX_RETRY_AFTER_SECONDS) + 1), MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_parse_retry_after_usable(header, expected):
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "garbage",
        "-5",
        "1.5",
        "NaN",
        "inf",
        "+5",
        "1e3",
        "5 s",
        "1" * 65,
        "Wed, 21 Oct 2026 07:28:00 GMT" + " " * 10 + "x" * 40,
        "Wed, 21 Oct 2026 07:28:00",  # no zone
        "Wed, 21 Oct 2026 07:28:00 -0000",  # RFC 2822 "unknown zone"
        "\xb2",  # latin-1 superscript two: str.isdigit() is true, float() is not
        "\u0663",  # Arabic-Indic three
    ],
)
def test_parse_retry_after_unusable(header):
    assert parse_retry_after(header, NOW) is None


def test_parse_retry_after_relative_to_now():
    header = "Wed, 21 Oct 2026 07:28:00 GMT"
    assert parse_retry_after(header, NOW + 1000) == 680.0
    assert parse_retry_after(header, NOW + 1680) == 0.0
    assert parse_retry_after("120", NOW + 10**6) == 120.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Wed Oct 21 07:28:00 2026", 1680.0),  # asctime: no zone, GMT by definition
        ("Wed Oct  1 07:28:00 2026", 0.0),  # asctime pads a one-digit day with a space
        ("Wednesday, 21-Oct-26 07:28:00 GMT", 1680.0),  # rfc850, two-digit year
        ("Thursday, 21-Oct-76 07:28:00 GMT", 0.0),  # 2076 is more than 50 years ahead: 1976
    ],
)
def test_parse_retry_after_accepts_the_obsolete_http_date_forms(header, expected):
    """RFC 9110 5.6.7: recipients must accept rfc850 and asctime dates (asctime was rejected)."""
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize("header", ["Wed Oct 21 07:28:00 2026 x", "Wed Oct 21 7:28:00 2026"])
def test_parse_retry_after_rejects_malformed_asctime(header):
    assert parse_retry_after(header, NOW) is None
