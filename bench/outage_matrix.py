"""Outage matrix: requests that reach a dead API and the worst recovery, per schedule, outage and variant.

Schedules: hourly (the seed source ``airdrops``) and every 5 minutes (``sponsored``). Outages of
1 h, 24 h and 72 h. Variants, each simulated by ``bench/outage.py``:

- ``ours_default``: the seed config as shipped;
- ``ours_constant``: the same with ``reset_multiplier=1`` (a constant open wait, as before the growing wait);
- ``ours_growing``: the same with ``GROWING`` (the open wait doubles after each failed probe, capped);
- ``plain_retries``: a plain task with ``retries=5``, exponential backoff, ``max_active_runs=1``.

Each cell sweeps the outage's start across one schedule interval (so its end, the API's recovery,
falls at every phase of the schedule) and over calendar days (Airflow's retry jitter hashes the
logical date); ``requests`` is the mean, ``recovery_max_min`` the worst case. ``candidates`` (full run
only) reruns ``ours`` with other multipliers and caps (config only) on fewer outages: with
``ours_default`` and ``ours_growing`` the basis of the defaults (see bench/README.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from bench.measure import mean, rounded
from bench.outage import PLAIN_MULTIPLIER, PLAIN_RETRIES, PLAIN_RETRY_DELAY, scenario

SCHEDULES: Mapping[str, tuple[str, timedelta]] = {
    "hourly": ("airdrops", timedelta(hours=1)),
    "5min": ("sponsored", timedelta(minutes=5)),
}
OUTAGE_HOURS = (1, 24, 72)
GROWING = {"reset_multiplier": 2.0, "max_reset_timeout": timedelta(hours=6)}
"""``ours_growing``: double the open wait after each failed probe, up to 6 h (the cap that reaches
0.25x the plain requests at 72 h on both schedules)."""
CANDIDATES = [(2.0, timedelta(hours=h)) for h in (1, 2, 4)]
PLAIN = "plain_retries"
RECOVERY_SPAN = timedelta(hours=6)
"""Recovery moments cover this much time after the outage's nominal end: more than plain Airflow's
longest gap between tries (< 160 min) and than the longest candidate open wait plus one interval."""


def with_breaker(config: SyncConfig, **changes: Any) -> SyncConfig:
    return config.replace(circuit_breaker=dataclasses.replace(config.circuit_breaker, **changes))


def offsets(interval: timedelta, points: int) -> list[timedelta]:
    """``points`` outage starts over one schedule interval, the first 30 s (5-min: 15 s) after a run."""
    first = min(timedelta(seconds=30), interval / 20)
    return [first + interval * k / points for k in range(points)]


def cell(
    schedule: str, outage_h: int, variants: Mapping[str, SyncConfig | None], days: int, points: int
) -> dict[str, dict[str, Any]]:
    """Every variant over the same outages; per variant the mean requests of outages lasting exactly
    ``outage_h`` (start swept over one interval, x days) and the worst recovery over outages lasting
    ``outage_h`` to ``outage_h + min(outage_h, RECOVERY_SPAN)`` (the recovery moment swept over every
    phase of the schedule and of the longest gap between requests)."""
    _, interval = SCHEDULES[schedule]
    starts = offsets(interval, points)
    length = timedelta(hours=outage_h)
    span = min(RECOVERY_SPAN, length)
    exact = [scenario(day, o, variants, length, interval) for day in range(days) for o in starts]
    later = [
        scenario(day, starts[k % points], variants, length + span * (k + 1) / (2 * points), interval)
        for day in range(days)
        for k in range(2 * points - 1)
    ]
    out = {}
    for name in variants:
        requests = [r[name]["requests_while_down"] for r in exact]
        recovery = [r[name]["recovery_s"] for r in exact + later]
        if any(value is None for value in recovery):
            raise RuntimeError(f"{schedule} {outage_h} h {name}: no good sync within the horizon")
        out[name] = {
            "schedule": schedule,
            "outage_h": outage_h,
            "variant": name,
            "requests": rounded(mean(requests), 1),
            "requests_max": max(requests),
            "recovery_max_min": rounded(max(recovery) / 60, 1),
            "recovery_mean_min": rounded(mean(recovery) / 60, 1),
            "outages": len(exact),
            "recovery_moments": len(recovery),
        }
    return out


def meets(ours: Mapping[str, Any], plain: Mapping[str, Any]) -> dict[str, bool]:
    """The issue's goals for one cell: fewer requests, worst recovery no later, <= 0.25x at 72 h."""
    fewer = ours["requests"] < plain["requests"]
    return {
        "fewer_requests": fewer,
        "recovery_no_later": ours["recovery_max_min"] <= plain["recovery_max_min"],
        "quarter_at_72h": ours["outage_h"] != 72 or ours["requests"] <= 0.25 * plain["requests"],
    }


def variants(source: str) -> dict[str, SyncConfig | None]:
    """The seed config as shipped, with the constant wait, with ``GROWING``, and plain retries (``None``)."""
    seed = DEFAULT_SYNC_CONFIGS[source]
    return {
        "ours_default": seed,
        "ours_constant": with_breaker(seed, reset_multiplier=1.0),
        "ours_growing": with_breaker(seed, **GROWING),
        PLAIN: None,
    }


def distinct(configs: Mapping[str, SyncConfig | None]) -> tuple[dict[str, SyncConfig | None], dict[str, str]]:
    """Variants with equal configs are simulated once: (the distinct ones, alias -> simulated name)."""
    unique: dict[str, SyncConfig | None] = {}
    alias: dict[str, str] = {}
    for name, config in configs.items():
        same = next((n for n, c in unique.items() if c == config), None)
        if same is None:
            unique[name] = config
        alias[name] = same or name
    return unique, alias


def run(
    quick: bool = False, *, outage_hours: tuple[int, ...] = OUTAGE_HOURS, sizes: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The matrix (``sizes``: days and outage starts per interval; the smoke test makes them tiny)."""
    days, points = sizes or ((1, 3) if quick else (2, 6))
    scenarios: list[dict[str, Any]] = []
    plain_cells: dict[tuple[str, int], dict[str, Any]] = {}
    for schedule, (source, _) in SCHEDULES.items():
        configs = variants(source)
        unique, alias = distinct(configs)
        for hours in outage_hours:
            measured = cell(schedule, hours, unique, days, points)
            plain_cells[schedule, hours] = measured[PLAIN]
            for name, config in configs.items():
                row = {**measured[alias[name]], "variant": name}
                if config is not None:
                    cb = config.circuit_breaker
                    row.update(reset_multiplier=cb.reset_multiplier, **_cap_h(cb.reset_timeout_cap))
                    row["goals"] = meets(row, measured[PLAIN])
                scenarios.append(row)
    legacy = {r["variant"]: r for r in scenarios if (r["schedule"], r["outage_h"]) == ("hourly", 24)}
    ours, plain = legacy["ours_default"], legacy[PLAIN]
    return {
        "scenarios": scenarios,
        "requests_ours": ours["requests"],
        "requests_plain_airflow": plain["requests"],
        "ratio_vs_plain": rounded(ours["requests"] / plain["requests"], 3),
        "recovery_s_ours": rounded(ours["recovery_mean_min"] * 60, 0),
        "recovery_s_ours_max": rounded(ours["recovery_max_min"] * 60, 0),
        "recovery_s_plain_airflow": rounded(plain["recovery_mean_min"] * 60, 0),
        "recovery_s_plain_airflow_max": rounded(plain["recovery_max_min"] * 60, 0),
        "sweep": {"days": days, "starts_per_interval": points, "recovery_moments_per_day": 3 * points - 1},
        "plain_airflow_model": {
            "retries": PLAIN_RETRIES,
            "retry_exponential_backoff": PLAIN_MULTIPLIER,
            "retry_delay_s": PLAIN_RETRY_DELAY.total_seconds(),
            "max_retry_delay": None,
            "max_active_runs": 1,
            "catchup": False,
        },
        "candidates": [] if quick or sizes else candidates(plain_cells, 1, 3),
    }


def _cap_h(cap: timedelta) -> dict[str, float]:
    return {"max_reset_timeout_h": rounded(cap / timedelta(hours=1), 2)}


def candidates(
    plain_cells: Mapping[tuple[str, int], Mapping[str, Any]],
    days: int,
    points: int,
) -> list[dict[str, Any]]:
    """``ours`` with each (multiplier, cap) in ``CANDIDATES`` (on fewer outages) against the plain cells
    measured above: requests ratio, worst recovery, and how many of the three goals each cell meets."""
    out = []
    for multiplier, cap in CANDIDATES:
        rows = []
        for schedule, (source, _) in SCHEDULES.items():
            config = with_breaker(
                DEFAULT_SYNC_CONFIGS[source], reset_multiplier=multiplier, max_reset_timeout=cap
            )
            for hours in OUTAGE_HOURS:
                row = cell(schedule, hours, {"ours": config}, days, points)["ours"]
                plain = plain_cells[schedule, hours]
                rows.append(
                    {
                        "schedule": schedule,
                        "outage_h": hours,
                        "requests": row["requests"],
                        "ratio_vs_plain": rounded(row["requests"] / plain["requests"], 3),
                        "recovery_max_min": row["recovery_max_min"],
                        "goals_met": sum(meets(row, plain).values()),
                    }
                )
        out.append({"reset_multiplier": multiplier, **_cap_h(cap), "cells": rows})
    return out
