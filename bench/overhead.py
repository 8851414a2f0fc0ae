"""Overhead: Variable API calls and wall time our operator adds to a sync, in a real task.

``bench_overhead`` (see ``bench/airflow_dags.py``) runs inside a real Airflow worker, so every
Variable get/set goes through the Execution API as in production. It alternates a sync with our
operator (state store wrapped to count and time Variable calls) and the same GETs through a plain
``requests.Session``, for a 1-page and a 20-page sync, after one warm-up of each. Then, per limit
(60, 10,000, and 10,000 with the exact log forced), 1- and 20-page syncs of a source whose window
is nearly full: ``ms_per_extra_page`` and the stored ``state_bytes`` side by side.
"""

from __future__ import annotations

from typing import Any

from bench.deployment import BenchDeployment
from bench.measure import median, rounded


def run(deployment: BenchDeployment) -> dict[str, Any]:
    run_id, dag_run = deployment.run_dag("bench_overhead")
    if dag_run["state"] != "success":
        raise RuntimeError(
            f"bench_overhead ended {dag_run['state']}:\n{deployment.cluster.log_tail('scheduler')}"
        )
    return summarise(deployment.xcom("bench_overhead", run_id, "measure"))


def per_limit(by_limit: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """``ms_per_extra_page`` (20-page minus 1-page sync, / 19, medians) and the stored bytes per limit."""
    out: dict[str, Any] = {"ms_per_extra_page": {}, "state_bytes": {}, "variable_ms_per_extra_page": {}}
    for variant, rows in by_limit.items():
        key = f"limit_{variant}"
        one, twenty = rows["1"], rows["20"]
        out["ms_per_extra_page"][key] = rounded(
            (median(r["ours_ms"] for r in twenty) - median(r["ours_ms"] for r in one)) / 19, 1
        )
        out["variable_ms_per_extra_page"][key] = rounded(
            (median(r["variable_ms"] for r in twenty) - median(r["variable_ms"] for r in one)) / 19, 1
        )
        out["state_bytes"][key] = int(median(r["state_bytes"] for r in twenty))
    ms = out["ms_per_extra_page"]
    out["ratio_ms_per_extra_page_10000_vs_60"] = rounded(ms["limit_10000"] / ms["limit_60"], 2)
    out["by_limit_raw"] = by_limit
    return out


def summarise(rows_by_pages: dict[str, Any]) -> dict[str, Any]:
    """Medians per page count; the fixed keys hold the 1-page and 20-page values."""
    rows_by_pages = dict(rows_by_pages)
    limits = per_limit(rows_by_pages.pop("by_limit")) if "by_limit" in rows_by_pages else {}
    per: dict[str, dict[str, float]] = {}
    for pages, rows in rows_by_pages.items():
        calls = [r["variable_gets"] + r["variable_sets"] for r in rows]
        per[pages] = {
            "repetitions": len(rows),
            "variable_calls": median(calls),
            "variable_gets": median(r["variable_gets"] for r in rows),
            "variable_sets": median(r["variable_sets"] for r in rows),
            "ours_ms": rounded(median(r["ours_ms"] for r in rows), 1),
            "plain_ms": rounded(median(r["plain_ms"] for r in rows), 1),
            "added_ms": rounded(median(r["ours_ms"] - r["plain_ms"] for r in rows), 1),
            "variable_ms": rounded(median(r["variable_ms"] for r in rows), 1),
            "ms_per_variable_call": rounded(
                median(r["variable_ms"] / (r["variable_gets"] + r["variable_sets"]) for r in rows), 2
            ),
        }
    one, twenty = per["1"], per["20"]
    return {
        "variable_calls_per_sync": {"1_page": one["variable_calls"], "20_pages": twenty["variable_calls"]},
        "variable_calls_per_extra_page": rounded((twenty["variable_calls"] - one["variable_calls"]) / 19, 2),
        "ms_per_sync_added": {"1_page": one["added_ms"], "20_pages": twenty["added_ms"]},
        "ms_per_sync_plain": {"1_page": one["plain_ms"], "20_pages": twenty["plain_ms"]},
        "ms_per_sync_ours": {"1_page": one["ours_ms"], "20_pages": twenty["ours_ms"]},
        "ms_per_variable_call": one["ms_per_variable_call"],
        "per_page_count": per,
        "raw": rows_by_pages,
        **limits,
    }
