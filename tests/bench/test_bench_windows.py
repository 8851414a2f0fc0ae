"""Smoke test of ``bench/windows.py``'s parts that do not sleep: the two configs, the API-side count,
the state size at a full day window, and the table rows (the run itself is in ``bench/run.py``)."""

from __future__ import annotations

from datetime import timedelta

from airflow_sync_provider.state.store import SourceState
from bench import table, windows
from bench.run import ALL, parse_args
from bench.windows import Side, WindowsParams, config_for, state_bytes_at_a_full_day, summarize

PARAMS = WindowsParams(seconds=10.0, day_limit=30)


def test_the_two_sides_differ_only_in_the_day_window() -> None:
    ours = config_for("windows_ours", PARAMS, day=PARAMS.day_limit)
    alone = config_for("windows_ours", PARAMS, day=None)
    assert (ours.rate_limit.max_requests, ours.rate_limit.window) == (5, timedelta(seconds=1))
    assert [(w.max_requests, w.window) for w in ours.rate_limit.extra_windows] == [(30, timedelta(days=1))]
    assert ours.replace(rate_limit=alone.rate_limit) == alone and alone.rate_limit.extra_windows == ()


def test_the_api_side_counts() -> None:
    side = Side(config_for("windows_ours", PARAMS, day=30), 10.0, windows.InMemoryStateStore())
    side.items, side.syncs, side.refused_syncs = 3, 2, 1
    summary = summarize([(0.0, 200), (0.1, 200), (0.2, 429), (2.0, 200)], side)
    assert (summary["requests"], summary["api_429s"], summary["served"]) == (4, 1, 3)
    assert summary["most_served_in_any_second"] == 2 and summary["refused_syncs"] == 1


def test_the_state_at_a_full_day_window_is_bucketed_and_small() -> None:
    size = state_bytes_at_a_full_day(SourceState("windows_ours"), PARAMS)
    assert 1000 < size < 8192  # the 250,000 requests counted (asserted inside), in buckets


def test_table_rows_and_the_only_flag() -> None:
    result = {
        "params": {"per_second": 5, "day_limit": 120},
        "day_and_second": {
            "api_429s": 0,
            "state_bytes": 4321,
            "state_bytes_day_limit": 250_000,
            "baseline_second_only": {"api_429s": 7},
        },
    }
    rows = table.rows({"windows": result})
    assert rows[0][1:3] == ("0 (both windows)", "7 (per-second window only)") and "met" in rows[0][4]
    assert rows[1][1] == "4,321" and "met" in rows[1][4] and "24 syncs a day" in rows[1][0]
    result["day_and_second"]["state_bytes_by_syncs_per_day"] = {"24": 4321, "288": 9000}
    assert [row[1] for row in table.rows({"windows": result})[1:]] == ["4,321", "9,000"]
    assert "missed" in table.rows({"windows": result})[2][4]
    assert "windows" in ALL and parse_args(["--only", "windows"]).only == ["windows"]
