"""Smoke test of the benchmarks' pure parts (jitter, quota, outage simulation) at tiny sizes.

Checks the fixed JSON keys and the invariants the README states; never timings. The real-Airflow
parts (deferral, overhead, outage slice) run only in ``bench/run.py``.
"""

from __future__ import annotations

import json
import random
import socket
from datetime import UTC, datetime, timedelta

import pytest
import requests

from airflow_sync_provider.demo.server import DemoServer
from bench import jitter, outage, overhead, quota, table
from bench.deployment import running_segments
from bench.measure import max_in_any_window

TINY_QUOTA = quota.QuotaParams(
    requests=400, limit=10, window_s=60.0, runs=4, max_pages=5, load=2.0, page_ms=100
)


# -- helpers -------------------------------------------------------------------------------------------


def test_max_in_any_window_counts_half_open_windows():
    # a slot used at 0 is free again at 1000: 0 and 1000 never share a window
    assert max_in_any_window([0, 999, 1000, 1999], 1000) == 2
    assert max_in_any_window([0, 1, 2, 3], 1000) == 4
    assert max_in_any_window([], 1000) == 0


def test_running_segments_sum_only_running_stretches():
    history = [("running", 10.0), ("deferred", 13.5), ("running", 140.0), ("success", 142.0)]
    assert running_segments(history) == [(10.0, 13.5), (140.0, 142.0)]


# -- jitter ----------------------------------------------------------------------------------------------


def test_jitter_small_run_keys_and_invariants():
    params = jitter.JitterParams(clients=10, trials=3)
    result = jitter.run(params=params)
    assert set(result["strategies"]) == set(jitter.STRATEGIES)
    for numbers in result["strategies"].values():
        assert numbers["calls_mean"] >= params.clients  # every client writes at least once
        assert numbers["calls_max"] >= numbers["calls_mean"]
        assert numbers["completion_ms_mean"] > 0
    assert result["recommendation"] in ("proportional", "full", "decorrelated")
    assert jitter.run(params=params) == result  # seeded: the same numbers every time


def test_jitter_one_client_never_conflicts():
    writes, _ = jitter.simulate("full", jitter.JitterParams(clients=1), random.Random(1))
    assert writes == 1


# -- quota -----------------------------------------------------------------------------------------------


def test_quota_ours_never_exceeds_the_limit_and_sees_no_429():
    result = quota.run(params=TINY_QUOTA)
    for key in (
        "limit",
        "max_in_any_window_ours",
        "max_in_any_window_fixed",
        "max_in_any_window_token_bucket",
    ):
        assert key in result
    assert result["limit"] == TINY_QUOTA.limit
    assert result["max_in_any_window_ours"] == TINY_QUOTA.limit
    assert result["api_429s_ours"] == 0
    assert result["requests_sent_ours"] == TINY_QUOTA.requests
    for kind in ("fixed", "token_bucket"):
        # every 429 was sent again, so sent = served + rejected
        assert result[f"requests_sent_{kind}"] == TINY_QUOTA.requests + result[f"api_429s_{kind}"]
        assert result[f"max_in_any_window_{kind}"] >= TINY_QUOTA.limit


def test_fixed_window_lets_two_limits_through_around_a_boundary():
    limiter = quota.FixedWindow(limit=3, window_ms=1000)
    granted = [t for t in (997, 998, 999, 1000, 1001, 1002) if limiter.acquire(t) == 0]
    assert granted == [997, 998, 999, 1000, 1001, 1002]
    assert max_in_any_window(granted, 1000) == 6
    assert limiter.acquire(1003) == 997  # the next window starts at 2000


def test_token_bucket_refills_at_the_nominal_rate():
    bucket = quota.TokenBucket(limit=2, window_ms=1000)
    assert [bucket.acquire(0), bucket.acquire(0)] == [0, 0]
    assert bucket.acquire(0) == 500  # one token every 500 ms
    assert bucket.acquire(500) == 0


def test_fake_api_enforces_a_true_sliding_window():
    api = quota.FakeApi(limit=2, window_ms=1000)
    assert [api.receive(0), api.receive(10), api.receive(999)] == [None, None, 1]
    assert api.receive(1000) is None
    assert api.rejected == 1


# -- outage ----------------------------------------------------------------------------------------------


def test_outage_scenario_with_seed_defaults():
    offset = timedelta(minutes=10, seconds=30)
    result = outage.scenario(0, offset, outage.SEED_CONFIG)
    down = [r["requests_while_down"] for r in result["ours_runs"] if r["requests_while_down"]]
    # first failing run: 1 try + 3 retries; the next opens the breaker; then one probe per hourly run
    assert down == [4, 1] + [1] * 22
    assert result["ours"]["requests_while_down"] == 27
    assert result["ours"]["recovery_s"] == pytest.approx(3600 - offset.total_seconds(), abs=1)
    plain_down = [r for r in result["plain_runs"] if r["requests_while_down"]]
    assert all(r["requests"] == 1 + outage.PLAIN_RETRIES for r in plain_down[:-1])
    assert result["plain"]["requests_while_down"] == sum(r["requests_while_down"] for r in plain_down)
    assert result["plain"]["recovery_s"] > 0


def test_outage_replay_of_back_to_back_runs():
    start = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    runs = outage.replay(outage.SLICE_CONFIG, [start, start + 30, start + 60])
    assert [r["requests"] for r in runs] == [4, 1, 0]
    assert [r["state"] for r in runs] == ["failed", "failed", "skipped"]


def test_plain_retry_delays_follow_airflow():
    logical = datetime(2026, 3, 2, 2, tzinfo=UTC)
    end = logical + timedelta(seconds=1)
    first = (outage.plain_next_retry(logical, 1, end, "sync_airdrops") - end).total_seconds()
    second = (outage.plain_next_retry(logical, 2, end, "sync_airdrops") - end).total_seconds()
    assert 300 <= first < 600  # retry_delay * 2**0, plus Airflow's hash jitter in [d, 2d)
    assert 600 <= second < 1200


# -- overhead summary and the table ----------------------------------------------------------------------


def _row(ours: float, plain: float, gets: int, sets: int) -> dict[str, float]:
    return {
        "ours_ms": ours,
        "plain_ms": plain,
        "variable_gets": gets,
        "variable_sets": sets,
        "variable_ms": 10.0,
    }


def test_overhead_summary_keys():
    summary = overhead.summarise({"1": [_row(30, 10, 1, 2)] * 3, "20": [_row(300, 100, 1, 21)] * 3})
    assert summary["variable_calls_per_sync"] == {"1_page": 3, "20_pages": 22}
    assert summary["variable_calls_per_extra_page"] == 1
    assert summary["ms_per_sync_added"] == {"1_page": 20, "20_pages": 200}


def test_table_and_json_for_the_pure_parts():
    results = {
        "jitter": jitter.run(params=jitter.JitterParams(clients=5, trials=2)),
        "quota": quota.run(params=TINY_QUOTA),
        "overhead": overhead.summarise({"1": [_row(30, 10, 1, 2)], "20": [_row(300, 100, 1, 21)]}),
        "deferral": {
            "wait_s": 20,
            "worker_seconds_ours": 1.0,
            "worker_seconds_sleeping": 20.0,
            "ratio_vs_sleeping": 0.05,
        },
        "parse": {"error": "not run in the smoke test"},
    }
    json.dumps(results)
    text = table.markdown(results)
    assert text.splitlines()[0] == "| measure | ours | alternative | ratio | goal |"
    assert "== 10 (met)" in text
    assert "parse: not measured" in text


# -- the demo API the real parts use ----------------------------------------------------------------------


def test_demo_server_disables_nagle_on_keep_alive_connections():
    """Headers and body are two writes; with Nagle on, every keep-alive response after the first waits
    for the client's delayed ACK (~40 ms), which inflated the plain-Session baseline of the overhead
    benchmark 5-fold."""
    with DemoServer(port=0) as demo, requests.Session() as session:
        session.get(f"{demo.url}/healthz").raise_for_status()
        connections = list(demo._httpd._connections)  # type: ignore[union-attr]
        assert connections
        assert all(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in connections)
