"""Smoke test of ``bench/adaptive.py``: its configs, measures, table rows and keys (never its numbers;
the measurement itself runs minutes of real clock, only in ``bench/run.py``)."""

from __future__ import annotations

from datetime import timedelta

from bench import adaptive, table
from bench.adaptive import AdaptiveParams, config_for, measures
from bench.run import ALL, parse_args

PARAMS = AdaptiveParams(minute=6.0)


def test_the_variants_differ_only_in_adaptive_and_in_having_a_window() -> None:
    ours, fixed, plain = (config_for(v, PARAMS) for v in ("ours", "fixed", "plain"))
    assert (ours.rate_limit.adaptive, fixed.rate_limit.adaptive, plain.rate_limit.adaptive) == (
        True,
        False,
        False,
    )
    assert ours.rate_limit.max_requests == fixed.rate_limit.max_requests == adaptive.CONFIGURED
    assert plain.rate_limit.max_requests > adaptive.CONFIGURED * PARAMS.minutes  # never binds
    assert ours.rate_limit.window == timedelta(seconds=6) and ours.backoff.initial_delay == timedelta(
        seconds=0.1
    )
    assert ours.defer_after >= ours.rate_limit.window  # waits are slept through in-process
    assert config_for("two_dags", PARAMS).rate_limit == ours.rate_limit


def test_measures_count_after_the_first_minute_and_the_worst_change() -> None:
    m = PARAMS.minute
    answers = [(0.5, 429), (m + 1, 200), (m + 2, 429), (m + 3, 200), (m + 4, 200)]
    answers += [(3 * m + i * 0.01, 200) for i in range(120)]  # 120 of the 240 allowed after minute 3
    answers += [(6 * m + i * 0.01, 200) for i in range(480)]  # all 480 after minute 6
    found = measures(answers, 0.0, PARAMS)
    assert found["requests_429_ratio"] == round(1 / (4 + 600), 4)
    assert found["by_change"] == {"3m": 0.5, "6m": 1.0} and found["utilization"] == 0.5


def test_a_tiny_real_run_writes_every_key() -> None:
    result = adaptive.run(params=AdaptiveParams(minute=1.0, minutes=1.5))
    assert set(result) >= {"requests_429_ratio", "utilization", "baselines", "two_dags"}
    assert set(result["baselines"]) == {"fixed", "plain"}
    assert set(result["two_dags"]) == {"requests_429_ratio", "utilization"}
    assert all(result["details"][v]["requests"] > 0 for v in adaptive.VARIANTS)
    rows = table.rows({"adaptive": result})
    assert [row[0].split(" (")[0].split(",")[0] for row in rows] == [
        "adaptive: 429s per request after minute 1",
        "adaptive: utilization in the 2 minutes after a change",
        "adaptive: two DAGs of the source at once",
    ]
    assert "adaptive" in ALL and parse_args(["--only", "adaptive"]).only == ["adaptive"]
