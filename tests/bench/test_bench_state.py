"""Smoke test of bench/state.py and the per-limit part of bench/overhead.py: keys and sizes, never timings."""

from __future__ import annotations

import json

from bench import overhead, state, table


def test_state_bench_sizes_and_forms():
    result = state.run(reps=1)
    json.dumps(result)
    per = result["per_variant"]
    assert (per["ours_60"]["form"], per["ours_10000"]["form"]) == ("log", "buckets")
    assert per["exact_log_10000"]["form"] == "log"
    assert max(result["bytes"].values()) < result["goal_bytes"] == 8192
    assert result["bytes_exact_log"]["limit_10000"] > 100_000  # the form before buckets
    # pages 0.5 s apart under the 1 s margin lease a few slots per write (hooks.lease): fewer writes
    # than pages, each still before the requests it reserves
    assert 0 < result["writes_per_page"] < 1.0
    text = table.markdown({"state": result})
    assert "state: Variable bytes, limit 60 / 10,000" in text and "(met)" in text


def _row(ours: float, size: int) -> dict[str, float]:
    return {
        "ours_ms": ours,
        "variable_gets": 1,
        "variable_sets": 2,
        "variable_ms": ours / 2,
        "state_bytes": size,
    }


def test_overhead_per_limit_summary():
    by_limit = {
        "60": {"1": [_row(100, 1000)], "20": [_row(1050, 1100)]},
        "10000": {"1": [_row(100, 1700)], "20": [_row(1126, 1750)]},
        "10000_exact_log": {"1": [_row(200, 180_000)], "20": [_row(4000, 180_000)]},
    }
    rows = {"1": [_row(30, 0)], "20": [_row(300, 0)]}
    for r in rows["1"] + rows["20"]:
        r["plain_ms"] = 10.0
    summary = overhead.summarise({**rows, "by_limit": by_limit})
    assert summary["ms_per_extra_page"] == {
        "limit_60": 50.0,
        "limit_10000": 54.0,
        "limit_10000_exact_log": 200.0,
    }
    assert summary["state_bytes"]["limit_10000"] == 1750
    assert summary["ratio_ms_per_extra_page_10000_vs_60"] == 1.08
    text = table.markdown({"overhead": summary})
    assert "overhead: ms per extra page, limit 10,000 vs 60" in text and "< 8,192 (met)" in text
