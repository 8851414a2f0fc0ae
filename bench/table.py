"""The markdown table (measure | ours | alternative | ratio | goal) printed by bench/run.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, str, str, str]
HEADER = ("measure", "ours", "alternative", "ratio", "goal")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{int(value):,}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _parse(r: dict[str, Any]) -> list[Row]:
    imp = r["import"]
    return [
        (
            f"parse: DagBag of {r['sources']:,} sources, trigger form on, median CPU s",
            _num(r["ours_s"]),
            f"{_num(r['plain_s'])} (plain 1-task DAGs)",
            _num(r["ratio_vs_plain"]),
            f"≤ 1.25 ({_verdict(r['ratio_vs_plain'] <= 1.25)})",
        ),
        (
            "parse: ours with `trigger_params=False` (diagnostic), median CPU s",
            _num(r["ours_without_trigger_params_s"]),
            f"{_num(r['plain_s'])} (plain 1-task DAGs)",
            _num(r["ratio_without_trigger_params_vs_plain"]),
            "—",
        ),
        (
            "parse: plain DAGs + our 4 params as `DAG(params=...)` (diagnostic)",
            "—",
            _num(r["plain_with_same_params_s"]),
            _num(r["ratio_plain_with_same_params_vs_plain"]),
            "—",
        ),
        ("import airflow_sync_provider, s", _num(imp["airflow_sync_provider_s"], 3), "—", "—", "—"),
        (
            "import …operators.sync after airflow.sdk, s",
            _num(imp["operators_sync_after_airflow_sdk_s"]),
            f"{_num(imp['airflow_sdk_s'])} (airflow.sdk itself)",
            "—",
            "—",
        ),
    ]


VARIANT_LABELS = {"ours_default": "ours (default)", "ours_growing": "ours ×2 up to 6 h"}


def _outage_cell(row: dict[str, Any], plain: dict[str, Any]) -> Row:
    goals = row["goals"]
    wanted = ["fewer", "no later"] + (["≤ 0.25×"] if row["outage_h"] == 72 else [])
    return (
        f"outage {row['outage_h']} h, {row['schedule']}, {VARIANT_LABELS[row['variant']]}: "
        "requests / worst recovery min",
        f"{_num(row['requests'], 1)} / {_num(row['recovery_max_min'], 0)}",
        f"{_num(plain['requests'], 1)} / {_num(plain['recovery_max_min'], 0)} (retries=5, backoff ×2)",
        _num(row["requests"] / plain["requests"]),
        f"{', '.join(wanted)} ({_verdict(all(goals.values()))})",
    )


def _outage(r: dict[str, Any]) -> list[Row]:
    cells = {(s["schedule"], s["outage_h"], s["variant"]): s for s in r["scenarios"]}
    rows = [
        _outage_cell(row, cells[row["schedule"], row["outage_h"], "plain_retries"])
        for row in r["scenarios"]
        if row["variant"] in VARIANT_LABELS
    ]
    real = r.get("real_slice")
    if isinstance(real, dict) and "real_requests_per_run" in real:
        rows.append(
            (
                "outage: real Airflow runs vs simulation, requests/run",
                str(real["real_requests_per_run"]),
                f"{real['simulated_requests_per_run']} (simulated)",
                "agree" if real["agree"] else "**differ**",
                "agree",
            )
        )
    elif isinstance(real, dict):
        rows.append(("outage: real Airflow slice", "error", real.get("error", "")[:80], "—", "agree"))
    return rows


def _quota(r: dict[str, Any]) -> list[Row]:
    worst = max(r["max_in_any_window_fixed"], r["max_in_any_window_token_bucket"])
    ok = r["max_in_any_window_ours"] == r["limit"]
    return [
        (
            f"quota: max requests in any {r['window_s'] / 60:.0f} min window (limit {r['limit']})",
            _num(r["max_in_any_window_ours"]),
            f"fixed window {r['max_in_any_window_fixed']} / "
            f"token bucket {r['max_in_any_window_token_bucket']}",
            _num(r["max_in_any_window_ours"] / worst),
            f"== {r['limit']} ({_verdict(ok)})",
        ),
        (
            f"quota: 429s from the API ({r['params']['requests']:,} requests)",
            _num(r["api_429s_ours"]),
            f"fixed window {r['api_429s_fixed']:,} / token bucket {r['api_429s_token_bucket']:,}",
            "—",
            "0",
        ),
    ]


def _learned_quota(r: dict[str, Any]) -> list[Row]:
    p, on, off = r["params"], r["learning_on"], r["learning_off"]
    setting = (
        f"config {p['config_limit']}, API {p['api_limit']} per {p['window_s']:g} s, "
        f"{on['seconds']:g} s each, side by side"
    )
    ratio = on["items_per_min"] / off["items_per_min"] if off["items_per_min"] else None
    return [
        (
            f"learned quota: 429s per minute ({setting})",
            f"{_num(on['api_429s_per_min'], 1)} (learning on)",
            f"{_num(off['api_429s_per_min'], 1)} (learning off)",
            "—",
            f"0 ({_verdict(on['api_429s'] == 0)})",
        ),
        (
            f"learned quota: items synced per minute (API allows {_num(r['api_steady_items_per_min'], 0)})",
            f"{_num(on['items_per_min'], 1)} (learning on)",
            f"{_num(off['items_per_min'], 1)} (learning off)",
            "—" if ratio is None else _num(ratio),
            "informational",
        ),
    ]


def _windows(r: dict[str, Any]) -> list[Row]:
    both, p = r["day_and_second"], r["params"]
    alone = both["baseline_second_only"]
    return [
        (
            f"windows: 429s from an API enforcing {p['per_second']}/s and {p['day_limit']}/day",
            f"{both['api_429s']} (both windows)",
            f"{alone['api_429s']} (per-second window only)",
            "—",
            f"0 ({_verdict(both['api_429s'] == 0)})",
        ),
        *(
            (
                f"windows: stored state at a day window of {both['state_bytes_day_limit']:,}, "
                f"{syncs} syncs a day, bytes",
                _num(size),
                "—",
                "—",
                f"< 8,192 ({_verdict(size < 8192)})",
            )
            for syncs, size in (
                both.get("state_bytes_by_syncs_per_day") or {"24": both["state_bytes"]}
            ).items()
        ),
    ]


def _deferral(r: dict[str, Any]) -> list[Row]:
    return [
        (
            f"deferral: worker-seconds for a {r['wait_s']} s Retry-After",
            _num(r["worker_seconds_ours"], 1),
            f"{_num(r['worker_seconds_sleeping'], 1)} (HttpHook + tenacity, sleeps)",
            _num(r["ratio_vs_sleeping"], 3),
            f"≤ 0.1 ({_verdict(r['ratio_vs_sleeping'] <= 0.1)})",
        )
    ]


def _overhead(r: dict[str, Any]) -> list[Row]:
    calls = r["variable_calls_per_sync"]
    ours, plain = r["ms_per_sync_ours"], r["ms_per_sync_plain"]
    return [
        (
            "overhead: Variable calls per 1-page sync",
            _num(calls["1_page"]),
            "0 (plain requests.Session)",
            "—",
            f"≤ 3 ({_verdict(calls['1_page'] <= 3)})",
        ),
        ("overhead: Variable calls per extra page", _num(r["variable_calls_per_extra_page"]), "0", "—", "—"),
        (
            "overhead: ms per 1-page sync (added)",
            f"{_num(ours['1_page'], 1)} (+{_num(r['ms_per_sync_added']['1_page'], 1)})",
            _num(plain["1_page"], 1),
            _num(ours["1_page"] / plain["1_page"], 1),
            "—",
        ),
        (
            "overhead: ms per 20-page sync (added)",
            f"{_num(ours['20_pages'], 1)} (+{_num(r['ms_per_sync_added']['20_pages'], 1)})",
            _num(plain["20_pages"], 1),
            _num(ours["20_pages"] / plain["20_pages"], 1),
            "—",
        ),
        *_overhead_by_limit(r),
    ]


def _overhead_by_limit(r: dict[str, Any]) -> list[Row]:
    if "ms_per_extra_page" not in r:
        return []
    ms, size = r["ms_per_extra_page"], r["state_bytes"]
    return [
        (
            "overhead: ms per extra page, limit 10,000 vs 60 (window nearly full)",
            f"{_num(ms['limit_10000'], 1)} vs {_num(ms['limit_60'], 1)}",
            f"{_num(ms['limit_10000_exact_log'], 1)} (exact log at 10,000)",
            _num(r["ratio_ms_per_extra_page_10000_vs_60"]),
            "about the same",
        ),
        (
            "overhead: state Variable bytes, limit 10,000 vs 60 (real Airflow)",
            f"{_num(size['limit_10000'])} vs {_num(size['limit_60'])}",
            f"{_num(size['limit_10000_exact_log'])} (exact log at 10,000)",
            "—",
            f"< 8,192 ({_verdict(max(size['limit_10000'], size['limit_60']) < 8192)})",
        ),
    ]


def _state(r: dict[str, Any]) -> list[Row]:
    size, ms, exact = r["bytes"], r["guard_ms_per_page"], r["guard_ms_per_page_exact_log"]
    logged = r["bytes_exact_log"]
    return [
        (
            "state: Variable bytes, limit 60 / 10,000",
            f"{_num(size['limit_60'])} / {_num(size['limit_10000'])}",
            f"{_num(logged['limit_60'])} / {_num(logged['limit_10000'])} (exact log)",
            _num(size["limit_10000"] / logged["limit_10000"], 3),
            f"< 8,192 ({_verdict(max(size.values()) < r['goal_bytes'])})",
        ),
        (
            "state: guard ms per page (in process), limit 60 / 10,000",
            f"{_num(ms['limit_60'], 3)} / {_num(ms['limit_10000'], 3)}",
            f"{_num(exact['limit_60'], 3)} / {_num(exact['limit_10000'], 3)} (exact log)",
            _num(r["ratio_ms_per_page_10000_vs_60"]),
            "about the same",
        ),
    ]


def _jitter(r: dict[str, Any]) -> list[Row]:
    s = r["strategies"]

    def others(key: str) -> str:
        return " / ".join(f"{name} {_num(s[name][key], 0)}" for name in ("full", "decorrelated", "none"))

    return [
        (
            f"jitter: writes, {r['clients']} contending clients (proportional ±10 %)",
            _num(s["proportional"]["calls_mean"], 0),
            others("calls_mean"),
            _num(s["proportional"]["calls_mean"] / s["full"]["calls_mean"]),
            f"recommend `{r['recommendation']}`",
        ),
        (
            "jitter: completion ms (proportional ±10 %)",
            _num(s["proportional"]["completion_ms_mean"], 0),
            others("completion_ms_mean"),
            _num(s["proportional"]["completion_ms_mean"] / s["full"]["completion_ms_mean"]),
            "—",
        ),
    ]


def _load(r: dict[str, Any]) -> list[Row]:
    return [
        (
            f"load: {r['rows']} rows, {r['pages']} pages into DuckDB, rows/s (median of {r['repetitions']})",
            _num(r["ours_rows_per_s"], 1),
            f"{_num(r['dlt_rest_rows_per_s'], 1)} (dlt RESTClient)",
            _num(r["ratio"]),
            "informational",
        )
    ]


def _bulk(r: dict[str, Any]) -> list[Row]:
    seconds, rss, rate = r["seconds"], r["peak_rss_mb"], r["rows_per_s"]
    ratio, per_page, one_page = (
        r["ratio_ours_vs_dlt_alone"],
        r["variable_calls_per_page"],
        r["variable_calls_per_sync_1_page"],
    )
    sizes = " / ".join(f"{_num(items)}" for items in r["peak_rss_items"].values())
    return [
        (
            f"bulk: {r['pages']:,} pages x {r['page_size']} items into DuckDB (merge), s",
            _num(seconds["ours"], 1),
            f"{_num(seconds['dlt_alone'], 1)} (dlt rest_api) / {_num(seconds['plain'], 1)} (requests + dlt)",
            _num(ratio),
            f"≤ 1.2 ({_verdict(ratio <= 1.2)})",
        ),
        (
            "bulk: rows per s",
            _num(rate["ours"], 0),
            f"{_num(rate['dlt_alone'], 0)} (dlt rest_api)",
            _num(rate["ours"] / rate["dlt_alone"]),
            "—",
        ),
        (
            "bulk: Variable calls per extra page / per 1-page sync",
            f"{_num(per_page)} / {_num(one_page)}",
            "—",
            "—",
            f"≤ 0.25 / ≤ 3 ({_verdict(per_page <= 0.25 and one_page <= 3)})",
        ),
        (
            f"bulk: peak RSS MB at {sizes} items (ours)",
            " / ".join(_num(mb, 0) for mb in rss.values()),
            "—",
            _num(r["peak_rss_ratio"]),
            f"≤ 1.3 ({_verdict(r['peak_rss_ratio'] <= 1.3)})",
        ),
    ]


def _scale(r: dict[str, Any]) -> list[Row]:
    ms = r["dashboard_ms_1000_sources"]
    out: list[Row] = [
        (
            f"scale: GET /sync-provider/api/states, {r['dashboard_rows']:,} rows, median ms",
            _num(ms, 0),
            "—",
            "—",
            f"< 1,000 ({_verdict(ms is not None and ms < 1000)})",
        )
    ]
    for size in r["by_size"]:
        out.append(
            (
                f"scale: scheduler loop, {size['sources']:,} sources in own pools vs plain, median ms",
                _num(size["ours_loop_ms"], 1),
                f"{_num(size['plain_loop_ms'], 1)} (plain DAGs, default pool)",
                _num(size["loop_ratio_vs_plain"]),
                "—",
            )
        )
        if "loop_cpu_ratio_vs_plain" in size:
            out.append(
                (
                    f"scale: scheduler CPU per loop, {size['sources']:,} sources vs plain, ms",
                    _num(size["ours_loop_cpu_ms"], 1),
                    f"{_num(size['plain_loop_cpu_ms'], 1)} (plain DAGs, default pool)",
                    _num(size["loop_cpu_ratio_vs_plain"]),
                    "—",
                )
            )
    return out


def _adaptive(r: dict[str, Any]) -> list[Row]:
    p, base, two = r["params"], r["baselines"], r["two_dags"]
    limits = " -> ".join(str(limit) for _, limit in p["phases_per_minute"])
    setting = f"hidden {limits}/min, config {p['configured']}, {p['minutes']:g} min of {p['minute']:g} s"
    ratio = r["requests_429_ratio"]
    return [
        (
            f"adaptive: 429s per request after minute 1 ({setting})",
            _num(ratio, 4),
            f"fixed {_num(base['fixed'], 4)} / plain retries {_num(base['plain'], 4)}",
            _num(ratio / base["fixed"]) if base["fixed"] else "—",
            f"< 0.01 ({_verdict(ratio < 0.01)})",
        ),
        (
            "adaptive: utilization in the 2 minutes after a change (worst)",
            f"{r['utilization']:.2f}",
            "—",
            "—",
            f"≥ 0.85 ({_verdict(r['utilization'] >= 0.85)})",
        ),
        (
            "adaptive: two DAGs of the source at once, 429 ratio / utilization",
            f"{_num(two['requests_429_ratio'], 4)} / {two['utilization']:.2f}",
            "—",
            "—",
            f"< 0.01 / ≥ 0.85 ({_verdict(two['requests_429_ratio'] < 0.01 and two['utilization'] >= 0.85)})",
        ),
    ]


SECTIONS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "parse": _parse,
    "outage": _outage,
    "quota": _quota,
    "learned_quota": _learned_quota,
    "windows": _windows,
    "adaptive": _adaptive,
    "deferral": _deferral,
    "overhead": _overhead,
    "state": _state,
    "jitter": _jitter,
    "load": _load,
    "bulk": _bulk,
    "scale": _scale,
}


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for name, build in SECTIONS.items():
        section = results.get(name)
        if section is None:
            continue
        if "error" in section:
            out.append((f"{name}: not measured", "error", str(section["error"])[:100], "—", "—"))
            continue
        out.extend(build(section))
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)
