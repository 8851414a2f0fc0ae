"""Smoke test of the benchmarks' pure parts (jitter, quota, outage simulation) at tiny sizes.

Checks the fixed JSON keys and the invariants the README states; never timings. The real-Airflow
parts (deferral, overhead, outage slice) run only in ``bench/run.py``.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
from datetime import UTC, datetime, timedelta

import requests

from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.guard import breaker_settings
from bench import jitter, outage, outage_matrix, overhead, quota, table
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


def test_outage_scenario_with_the_constant_wait():
    """The breaker as it was before the growing wait: one probe per hourly run."""
    offset = timedelta(minutes=10, seconds=30)
    constant = outage_matrix.with_breaker(outage.SEED_CONFIG, reset_multiplier=1.0)
    result = outage.scenario(0, offset, {"ours": constant, "plain": None})
    down = [r["requests_while_down"] for r in result["ours_runs"] if r["requests_while_down"]]
    # first failing run: 1 try + 3 retries; the next opens the breaker; then one probe per hourly run
    assert down == [4, 1] + [1] * 22
    assert result["ours"]["requests_while_down"] == 27
    # the first good sync is the first run after the recovery (runs start 1-15 s late)
    assert 3600 - offset.total_seconds() < result["ours"]["recovery_s"] < 3600 - offset.total_seconds() + 16
    plain_down = [r for r in result["plain_runs"] if r["requests_while_down"]]
    assert all(r["requests"] == 1 + outage.PLAIN_RETRIES for r in plain_down[:-1])
    assert result["plain"]["requests_while_down"] == sum(r["requests_while_down"] for r in plain_down)
    assert result["plain"]["recovery_s"] > 0


def test_outage_growing_wait_probes_less_often_on_the_5_minute_schedule():
    """5-min schedule, 6 h outage: the constant 5 min wait probes at every other run (start latency
    races a wait of exactly one interval); x2 up to 50 min probes at 10, 20, 40, then every 50-55 min."""
    sponsored = outage_matrix.DEFAULT_SYNC_CONFIGS["sponsored"]
    configs = {
        "constant": outage_matrix.with_breaker(sponsored, reset_multiplier=1.0),
        "growing": sponsored,  # the default: x2 up to 50 min
        "plain": None,
    }
    five = timedelta(minutes=5)
    result = outage.scenario(0, timedelta(seconds=15), configs, timedelta(hours=6), five)
    constant, growing = result["constant"]["requests_while_down"], result["growing"]["requests_while_down"]
    assert growing < constant / 2
    sent = [r for r in result["growing_runs"] if r["requests_while_down"]]
    assert [r["requests_while_down"] for r in sent] == [4] + [1] * (len(sent) - 1)
    # sent[1] opens the breaker; each later request is a probe, sent at the first run after the open wait
    settings = breaker_settings(sponsored)
    for n, (before, probe) in enumerate(itertools.pairwise(sent[1:])):
        wait = settings.open_wait(n)
        assert wait <= probe["start"] - before["start"] < wait + 5 * 60 + 16, n
    assert settings.open_wait(len(sent)) == 50 * 60
    assert result["growing"]["recovery_s"] <= 55 * 60


def test_outage_matrix_json_shape():
    """``outage.scenarios``: one object per schedule x outage x variant, the 24 h hourly keys kept."""
    result = outage_matrix.run(outage_hours=(1, 24), sizes=(1, 1))
    rows = result["scenarios"]
    keys = {"schedule", "outage_h", "variant", "requests", "recovery_max_min"}
    assert all(keys <= set(row) for row in rows)
    assert {(r["schedule"], r["outage_h"], r["variant"]) for r in rows} == {
        (schedule, hours, variant)
        for schedule in ("hourly", "5min")
        for hours in (1, 24)
        for variant in ("ours_default", "ours_constant", "ours_growing", "plain_retries")
    }
    cell = {r["variant"]: r for r in rows if (r["schedule"], r["outage_h"]) == ("hourly", 24)}
    assert result["requests_ours"] == cell["ours_default"]["requests"]
    assert result["requests_plain_airflow"] == cell["plain_retries"]["requests"]
    assert cell["ours_default"]["goals"] == outage_matrix.meets(cell["ours_default"], cell["plain_retries"])
    assert all(r["recovery_max_min"] > 0 and r["requests"] > 0 for r in rows)
    five = {r["variant"]: r for r in rows if (r["schedule"], r["outage_h"]) == ("5min", 24)}
    assert five["ours_default"]["requests"] < five["ours_constant"]["requests"]
    text = table.markdown({"outage": result})
    assert "outage 24 h, 5min, ours (default): requests / worst recovery min" in text
    json.dumps(result)


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
