"""The quota an API reports in its headers: each family, every bad value, expiry, admission waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_sync_provider.policy import quota
from airflow_sync_provider.policy.quota import Quota

NOW = 1_764_400_000.0


def parse(headers: dict[str, str], **kwargs) -> Quota:
    return quota.parse_headers(headers, NOW, **kwargs)


@pytest.mark.parametrize(
    ("headers", "remaining", "reset_in", "limit", "window"),
    [
        # IETF draft, older form
        ({"RateLimit-Limit": "100", "RateLimit-Remaining": "7", "RateLimit-Reset": "30"}, 7, 30, 100, None),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "5", "ratelimit-policy": "10;w=60"}, 0, 5, 10, 60),
        # IETF draft, structured form
        ({"RateLimit": '"default";r=3;t=12', "RateLimit-Policy": '"default";q=50;w=3600'}, 3, 12, 50, 3600),
        # X-RateLimit family: reset as epoch seconds (GitHub) and as a delta
        (
            {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW + 40)},
            0,
            40,
            60,
            None,
        ),
        ({"x-ratelimit-remaining": "9", "x-ratelimit-reset": "20"}, 9, 20, None, None),
        # epoch milliseconds
        ({"x-ratelimit-remaining": "1", "x-ratelimit-reset": str(int((NOW + 8) * 1000))}, 1, 8, None, None),
        # several policies: the first is the one in force
        ({"ratelimit-remaining": "2", "ratelimit-policy": "10;w=1, 1000;w=3600"}, 2, None, 10, 1),
    ],
)
def test_header_families(headers, remaining, reset_in, limit, window):
    q = parse(headers)
    assert q.remaining == remaining
    assert (None if q.reset_at is None else round(q.reset_at - NOW, 3)) == reset_in
    assert q.limit == limit
    assert q.window == window
    assert q.observed_at == NOW


def test_ietf_names_win_over_x_family():
    q = parse({"ratelimit-remaining": "4", "x-ratelimit-remaining": "40"})
    assert q.remaining == 4


def test_configured_names_win_and_follow_reset_is():
    headers = {"x-app-left": "2", "x-app-reset": "100", "x-ratelimit-remaining": "50"}
    q = parse(headers, remaining_header="X-App-Left", reset_header="x-app-reset", reset_is="seconds")
    assert (q.remaining, q.reset_at) == (2, NOW + 100)
    # the same small number read as an epoch is in the past: clamped to now (reset already happened)
    q = parse(headers, remaining_header="x-app-left", reset_header="x-app-reset", reset_is="epoch")
    assert q.reset_at == NOW


@pytest.mark.parametrize(
    "value",
    ["", "abc", "-1", "1e5", "nan", "inf", "2.5.1", "٣", "²", " - 3", "99999999999999999999999"],
)
def test_bad_remaining_values_are_ignored(value):
    assert parse({"x-ratelimit-remaining": value, "x-ratelimit-reset": "10"}).remaining is None


@pytest.mark.parametrize(
    "value", ["", "soon", "-5", "nan", "1e400", "Wed, 21 Oct 2026 07:28:00", "2025-11-29T08:00:00"]
)
def test_bad_reset_values_leave_the_reset_unknown(value):
    q = parse({"x-ratelimit-remaining": "0", "x-ratelimit-reset": value})
    assert q.remaining == 0
    assert q.reset_at is None


def test_huge_values_are_clamped():
    q = parse(
        {"x-ratelimit-remaining": "123456789012345", "ratelimit-reset": "99999999", "x-ratelimit-reset": "1"}
    )
    assert q.remaining == quota.MAX_COUNT
    q = parse({"ratelimit-remaining": "0", "ratelimit-reset": "900000000"})  # 28 years as a delta
    assert q.reset_at == NOW + quota.MAX_RESET_SECONDS


@pytest.mark.parametrize(
    ("value", "form", "expected"),
    [
        ("30", "auto", NOW + 30),
        (str(NOW + 30), "auto", NOW + 30),  # >= 1e9: a Unix time
        (str((NOW + 30) * 1000), "auto", NOW + 30),  # >= 1e12: a Unix time in ms
        ("999999999", "auto", NOW + quota.MAX_RESET_SECONDS),  # just below 1e9: a (clamped) delta
        (str(NOW + 30), "seconds", NOW + quota.MAX_RESET_SECONDS),
        ("30", "epoch", NOW),
        (str(NOW - 100), "auto", NOW),  # a reset in the past: now
    ],
)
def test_reset_forms_by_magnitude(value, form, expected):
    assert quota.reset_time(value, NOW, form) == pytest.approx(expected)


def test_retry_after_means_spent_until_then():
    q = parse({"x-ratelimit-remaining": "5"}, retry_after=12.0)
    assert (q.remaining, q.reset_at) == (0, NOW + 12)


def test_no_headers_say_nothing():
    assert parse({"content-type": "application/json"}).is_empty()
    assert quota.current(parse({}), NOW) is None


def test_wait_until_reset_when_nothing_remains():
    q = parse({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "20"})
    assert quota.wait(q, NOW) == 20
    assert quota.wait(q, NOW + 19.5) == pytest.approx(0.5)
    assert quota.wait(q, NOW + 20) == 0  # expired at its reset time
    assert quota.current(q, NOW + 20) is None


def test_remaining_left_means_no_wait_and_consume_counts_down():
    q = parse({"x-ratelimit-remaining": "2", "x-ratelimit-reset": "60"})
    assert quota.wait(q, NOW) == 0
    q = quota.consume(q, NOW)
    q = quota.consume(q, NOW)
    assert q is not None and q.remaining == 0
    assert quota.wait(q, NOW) == 60
    assert quota.consume(q, NOW).remaining == 0  # never negative


def test_undated_reports_expire_after_their_window_or_an_hour():
    q = parse({"ratelimit-remaining": "0", "ratelimit-policy": "10;w=60"})
    assert quota.current(q, NOW + 59) is not None
    assert quota.current(q, NOW + 60) is None
    q = parse({"x-ratelimit-limit": "10"})
    assert quota.current(q, NOW + quota.UNDATED_TTL - 1) is not None
    assert quota.current(q, NOW + quota.UNDATED_TTL) is None


def test_merge_keeps_what_a_response_left_out():
    first = parse({"ratelimit-remaining": "5", "ratelimit-reset": "60", "ratelimit-policy": "10;w=60"})
    later = quota.parse_headers({"ratelimit-remaining": "4", "ratelimit-reset": "59"}, NOW + 1)
    merged = quota.merge(first, later, NOW + 1)
    assert (merged.remaining, merged.limit, merged.window) == (4, 10, 60)
    assert quota.merge(first, Quota(), NOW + 1) == first
    assert quota.merge(first, Quota(), NOW + 61) is None  # nothing new and the old one expired


@pytest.mark.parametrize(
    ("ours", "window", "advertised", "api_window", "expected"),
    [
        (100, 60, 10, 60, 10),  # same span: obey the lower limit
        (100, 60, 10, None, 10),  # no window named: taken per ours
        (100, 60, 500, 60, 100),  # never raised
        (100, 60, 10, 3600, 10),  # a longer API window allows at most its limit in ours
        (1000, 3600, 10, 60, 600),  # 10/min allows at most 600 in any hour
        (100, 3600, 10, 60, 100),
    ],
)
def test_effective_limit_is_the_tighter(ours, window, advertised, api_window, expected):
    q = Quota(limit=advertised, window=api_window, reset_at=NOW + 10, observed_at=NOW)
    assert quota.effective_limit(ours, window, q, NOW) == expected
    assert quota.effective_limit(ours, window, None, NOW) == ours


@given(
    remaining=st.text(max_size=12),
    reset=st.text(max_size=24),
    form=st.sampled_from(quota.RESET_FORMS),
)
def test_any_header_text_parses_to_a_sane_quota(remaining, reset, form):
    q = quota.parse_headers(
        {"x-ratelimit-remaining": remaining, "x-ratelimit-reset": reset}, NOW, reset_is=form
    )
    assert q.remaining is None or 0 <= q.remaining <= quota.MAX_COUNT
    assert q.reset_at is None or NOW <= q.reset_at <= NOW + quota.MAX_RESET_SECONDS
    assert 0 <= quota.wait(q, NOW) <= quota.MAX_RESET_SECONDS


# -- issue 17: bounded trust, dates, remaining 0 without a reset ----------------------------------------

CAP = 3600.0


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("31536000", "auto"),  # a year as a delta
        ("999999999", "auto"),  # just under 1e9: 31 years as a delta, clamped to a year
        (str(NOW), "seconds"),  # an epoch misread as seconds
    ],
)
def test_a_hostile_reset_is_trusted_at_most_the_cap(value, form):
    q = parse(
        {"x-app-left": "0", "x-app-reset": value},
        remaining_header="x-app-left",
        reset_header="x-app-reset",
        reset_is=form,
    )
    assert q.reset_at is not None and q.reset_at - NOW > CAP
    assert quota.wait(q, NOW, CAP) == CAP
    assert quota.wait(q, NOW + CAP - 1, CAP) == 1
    assert quota.current(q, NOW + CAP, CAP) is None  # past the cap: one request may go and find out
    assert quota.wait(q, NOW + CAP, CAP) == 0


def test_the_cap_never_lengthens_a_shorter_reset():
    q = parse({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"})
    assert quota.wait(q, NOW, CAP) == 30
    assert quota.current(q, NOW + 30, CAP) is None


def test_a_report_learned_in_the_future_or_without_a_learning_time_is_not_trusted_under_a_cap():
    ahead = Quota(remaining=0, reset_at=NOW + 10 * CAP, observed_at=NOW + 5 * CAP)
    assert quota.current(ahead, NOW, CAP) is None
    skewed = Quota(remaining=0, reset_at=NOW + 60, observed_at=NOW + quota.FUTURE_TOLERANCE)
    assert quota.wait(skewed, NOW, CAP) == 60  # a second of skew between workers is not "the future"
    undated = Quota(remaining=0, reset_at=NOW + 60)
    assert quota.current(undated, NOW, CAP) is None
    assert quota.current(undated, NOW) == undated  # without a cap, as before


@pytest.mark.parametrize(
    ("value", "reset_in"),
    [
        ("Sat, 29 Nov 2025 07:07:40 GMT", 60),  # IMF-fixdate
        ("Saturday, 29-Nov-25 07:07:40 GMT", 60),  # rfc850
        ("Sat Nov 29 07:07:40 2025", 60),  # asctime
        ("2025-11-29T07:07:40Z", 60),  # ISO 8601
        ("2025-11-29T08:07:40+01:00", 60),
        ("2025-11-29T07:07:40.5Z", 60.5),
    ],
)
def test_a_reset_sent_as_a_date_or_an_iso_time_is_read(value, reset_in):
    for form in quota.RESET_FORMS:
        q = parse(
            {"x-app-left": "0", "x-app-reset": value},
            remaining_header="x-app-left",
            reset_header="x-app-reset",
            reset_is=form,
        )
        assert q.reset_at == NOW + reset_in
    assert parse({"ratelimit-remaining": "0", "ratelimit-reset": value}).reset_at == NOW + reset_in


def test_remaining_zero_without_a_reset_is_never_a_wait_of_zero():
    """No reset header (or an unusable one): the report still holds until it expires."""
    q = parse({"x-ratelimit-remaining": "0"})
    assert q.reset_at is None
    assert quota.wait(q, NOW) == quota.UNDATED_TTL
    assert quota.wait(q, NOW, CAP / 4) == CAP / 4
    named = parse({"ratelimit-remaining": "0", "ratelimit-policy": "10;w=60"})
    assert quota.wait(named, NOW + 20) == 40


def test_remaining_zero_without_a_reset_gets_the_callers_next_free_slot():
    q = parse({"x-app-left": "0"}, remaining_header="x-app-left")
    fixed = quota.with_reset(q, NOW + 75)
    assert fixed.reset_at == NOW + 75 and quota.wait(fixed, NOW) == 75
    dated = parse({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "5"})
    assert quota.with_reset(dated, NOW + 75) == dated  # a usable reset stands
    left = parse({"x-ratelimit-remaining": "3"})
    assert quota.with_reset(left, NOW + 75) == left
