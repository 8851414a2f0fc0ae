"""Windows an API advertises (``policy.advertised``): both header families, pure parsing."""

from __future__ import annotations

from airflow_sync_provider.policy.advertised import Advertised, windows

DAY = 86400.0


def test_every_rate_limit_policy_entry() -> None:
    assert windows({"RateLimit-Policy": "100;w=10, 250000;w=86400"}) == (
        Advertised(100, 10.0, "RateLimit-Policy"),
        Advertised(250000, DAY, "RateLimit-Policy"),
    )


def test_a_limit_header_naming_its_window_in_its_name() -> None:
    kong = {"X-RateLimit-Limit-Second": "5", "X-RateLimit-Limit-Hour": "500", "x-ratelimit-limit-day": "2000"}
    assert windows(kong) == (
        Advertised(5, 1.0, "X-RateLimit-Limit-Second"),
        Advertised(500, 3600.0, "X-RateLimit-Limit-Hour"),
        Advertised(2000, DAY, "X-RateLimit-Limit-Day"),
    )
    assert windows({"RateLimit-Limit-Minute": "60"}) == (Advertised(60, 60.0, "RateLimit-Limit-Minute"),)


def test_a_limit_header_listing_policies_with_their_windows() -> None:
    listed = {"X-RateLimit-Limit": "100, 100;w=60, 5000;window=3600"}
    assert windows(listed) == (
        Advertised(100, 60.0, "X-RateLimit-Limit"),
        Advertised(5000, 3600.0, "X-RateLimit-Limit"),
    )
    assert windows({"RateLimit-Limit": '10, 50;window="86400"'}) == (Advertised(50, DAY, "RateLimit-Limit"),)


def test_a_bare_limit_names_no_window() -> None:
    # GitHub: an hour is documented, not sent; policy.quota reads it as per our window
    github = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "1800003600"}
    assert windows(github) == ()


def test_garbage_months_and_non_positive_windows_are_ignored() -> None:
    ignored = {
        "X-RateLimit-Limit-Month": "100000",
        "X-RateLimit-Limit-Day": "lots",
        "X-RateLimit-Limit-Hour": "0",
        "X-RateLimit-Limit": "100;w=0, 100;w=-5, x;w=60",
    }
    assert windows(ignored) == ()


def test_one_length_advertised_twice_keeps_the_lower_limit() -> None:
    both = {"RateLimit-Policy": "1000;w=86400", "X-RateLimit-Limit-Day": "800"}
    assert windows(both) == (Advertised(800, DAY, "X-RateLimit-Limit-Day"),)


def test_a_bare_limit_is_a_window_when_the_config_names_it() -> None:
    github = {"X-RateLimit-Limit": "5000", "X-RateLimit-Reset": "1800003600"}
    assert windows(github, bare_window=3600.0) == (
        Advertised(5000, 3600.0, "X-RateLimit-Limit, rate_limit.advertised_window"),
    )
    listed = {"RateLimit-Limit": "100, 100;w=60"}
    assert windows(listed, bare_window=86400.0) == (
        Advertised(100, 60.0, "RateLimit-Limit"),
        Advertised(100, DAY, "RateLimit-Limit, rate_limit.advertised_window"),
    )
    assert windows({"X-RateLimit-Limit": "5000;w=60"}, bare_window=3600.0) == (
        Advertised(5000, 60.0, "X-RateLimit-Limit"),
    )
