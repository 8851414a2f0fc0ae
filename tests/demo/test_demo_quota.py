"""The demo API's per-source quota: enforced as a moving window, announced in each header family."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_sync_provider.demo.faults import FaultError
from airflow_sync_provider.demo.quota import FAMILIES, QuotaRegistry, parse_quota
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.policy import quota as policy


class Clock:
    def __init__(self, now: float = 1_764_400_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_moving_window_serves_the_limit_then_429_until_the_oldest_leaves():
    clock = Clock()
    registry = QuotaRegistry(clock)
    registry.set(*parse_quota({"source": "airdrops", "limit": 2, "window": 10, "family": "ietf"}))
    assert registry.admit("airdrops")[0]
    clock.now += 4
    ok, headers = registry.admit("airdrops")
    assert ok and headers["RateLimit-Remaining"] == "0" and headers["RateLimit-Reset"] == "6"
    ok, headers = registry.admit("airdrops")
    assert not ok and headers["Retry-After"] == "6"
    clock.now += 6  # the first request leaves the window
    assert registry.admit("airdrops")[0]
    assert registry.active()["airdrops"]["rejected"] == 1
    assert registry.admit("quests") == (True, {})  # no quota for this source


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "none"])
def test_every_family_is_read_back_by_the_policy_parser(family):
    clock = Clock()
    registry = QuotaRegistry(clock)
    registry.set(*parse_quota({"source": "airdrops", "limit": 3, "window": 60, "family": family}))
    registry.admit("airdrops")
    _, headers = registry.admit("airdrops")
    learned = policy.parse_headers({k.lower(): v for k, v in headers.items()}, clock.now)
    assert learned.remaining == 1
    assert learned.limit == 3
    assert learned.reset_at == pytest.approx(clock.now + 60, abs=1)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"limit": 1}, "source"),
        ({"source": "a", "limit": 0}, "limit"),
        ({"source": "a", "limit": True}, "limit"),
        ({"source": "a", "limit": 1, "window": 0}, "window"),
        ({"source": "a", "limit": 1, "family": "github"}, "family"),
    ],
)
def test_bad_quota_specs_name_the_field(spec, field):
    with pytest.raises(FaultError) as info:
        parse_quota(spec)
    assert info.value.field == field


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def test_admin_api_switches_a_quota_per_source(demo):
    url = f"{demo.url}/_admin/quotas"
    bad = requests.post(url, json={"source": "airdrops", "limit": -1}, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"] == "limit"
    body = {"source": "airdrops", "limit": 1, "window": 60, "family": "x-ratelimit"}
    assert requests.post(url, json=body, timeout=5).json()["quotas"]["airdrops"]["limit"] == 1
    first = requests.get(f"{demo.url}/airdrops", timeout=5)
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "0"
    second = requests.get(f"{demo.url}/airdrops", timeout=5)
    assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
    assert requests.get(f"{demo.url}/quests", timeout=5).status_code == 200  # other sources unaffected
    assert requests.delete(url, params={"source": "airdrops"}, timeout=5).json()["quotas"] == {}
    assert requests.get(f"{demo.url}/airdrops", timeout=5).status_code == 200
