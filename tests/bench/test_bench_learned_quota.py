"""Smoke test of ``bench/learned_quota.py``'s pure parts: the configs, the per-minute summary and the
table rows (the measurement itself sleeps in real time, so it runs only in ``bench/run.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench import learned_quota, table
from bench.learned_quota import LearnedQuotaParams, Side, config_for, summarize
from bench.run import ALL, parse_args

PARAMS = LearnedQuotaParams(seconds=30.0)


def test_the_two_sides_differ_only_in_learning() -> None:
    on = config_for("quota_learning_on", PARAMS, learn=True)
    off = config_for("quota_learning_off", PARAMS, learn=False)
    assert (on.rate_limit.learn_from_headers, off.rate_limit.learn_from_headers) == (True, False)
    assert on.replace(source=off.source, endpoint=off.endpoint, rate_limit=off.rate_limit) == off
    assert on.rate_limit.max_requests == PARAMS.config_limit > PARAMS.api_limit
    assert on.rate_limit.window == timedelta(seconds=PARAMS.window_s)
    assert on.defer_after >= on.rate_limit.window  # waits are slept through in-process, never deferred


def test_summary_counts_the_apis_429s_and_scales_to_a_minute() -> None:
    side = Side(config_for("quota_learning_off", PARAMS, learn=False), PARAMS.seconds)
    side.items, side.syncs, side.elapsed = 150, 5, 30.0
    summary = summarize([200, 200, 429, 200, None, 429], side)
    assert summary["requests"] == 6
    assert (summary["api_429s"], summary["api_429s_per_min"]) == (2, 4.0)
    assert (summary["items"], summary["items_per_min"]) == (150, 300.0)


def test_table_rows_and_the_only_flag() -> None:
    def side(too_many: int, items: float) -> dict[str, float]:
        return {"seconds": 60.0, "api_429s": too_many, "api_429s_per_min": too_many, "items_per_min": items}

    result = {
        "params": vars(PARAMS),
        "learning_on": side(0, 1000.0),
        "learning_off": side(11, 950.0),
        "api_steady_items_per_min": 1000.0,
    }
    rows = table.rows({"learned_quota": result})
    assert [row[0].split(" (")[0] for row in rows] == [
        "learned quota: 429s per minute",
        "learned quota: items synced per minute",
    ]
    assert rows[0][1:3] == ("0 (learning on)", "11 (learning off)") and "met" in rows[0][4]
    assert rows[1][3] == "1.05"
    assert "learned_quota" in ALL and parse_args(["--only", "learned_quota"]).only == ["learned_quota"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "learned_quotas"])
    assert learned_quota.SIDES == {"learning_on": True, "learning_off": False}
