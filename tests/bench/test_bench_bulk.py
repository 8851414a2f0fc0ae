"""The quick ``bulk`` group end to end (three sides, peak RSS by size, each in a fresh interpreter):
every key of the full run, rows that add up, numbers that agree with each other. Never timings."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import bulk, table
from bench.run import ALL, parse_args

KEYS = {
    "items",
    "pages",
    "page_size",
    "rows",
    "seconds",
    "ratio_ours_vs_dlt_alone",
    "rows_per_s",
    "variable_calls",
    "variable_calls_per_sync_1_page",
    "variable_calls_per_page",
    "variable_ms_simulated",
    "variable_seconds_simulated",
    "peak_rss_mb",
    "peak_rss_items",
    "peak_rss_ratio",
    "load_average_at_start",
    "load_average_at_end",
}
SIZES = {"1000", "10000", "100000"}


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return bulk.run(quick=True, progress=lambda message: None)


def full_shaped_summary() -> dict[str, Any]:
    """``summarise`` of made-up full-size inputs: the keys a full run writes."""
    side = {"seconds": 10.0, "rows": bulk.ITEMS, "variable_calls": 2003, "variable_calls_1_page": 5}
    rss = {str(size): {"items": size, "peak_rss_mb": 200.0 + size / 1000} for size in bulk.RSS_SIZES}
    return bulk.summarise(dict.fromkeys(bulk.SIDES, side), rss, items=bulk.ITEMS, variable_ms=6.6)


def test_quick_run_writes_every_key_of_the_full_run(quick: dict[str, Any]) -> None:
    full = full_shaped_summary()
    assert set(quick) == KEYS == set(full) | {"load_average_at_start", "load_average_at_end"}
    for key in ("rows", "seconds"):
        assert set(quick[key]) == set(full[key]) == set(bulk.SIDES)
    assert set(quick["rows_per_s"]) == set(full["rows_per_s"]) == {"ours", "dlt_alone"}
    assert set(quick["peak_rss_mb"]) == set(quick["peak_rss_items"]) == set(full["peak_rss_mb"]) == SIZES
    assert full["pages"] == 1000 and full["variable_calls_per_page"] == 2.0


def test_quick_run_numbers_are_positive_and_consistent(quick: dict[str, Any]) -> None:
    items = bulk.ITEMS // bulk.QUICK_DIVISOR
    assert quick["items"] == items and quick["pages"] == items // bulk.PAGE
    assert quick["rows"] == dict.fromkeys(bulk.SIDES, items)  # every side landed every item once
    assert all(seconds > 0 for seconds in quick["seconds"].values())
    for side, rate in quick["rows_per_s"].items():
        assert rate == pytest.approx(items / quick["seconds"][side], rel=0.05)  # seconds are rounded
    ratio = quick["seconds"]["ours"] / quick["seconds"]["dlt_alone"]
    assert quick["ratio_ours_vs_dlt_alone"] == pytest.approx(ratio, rel=0.05)  # from unrounded seconds
    one_page, calls = quick["variable_calls_per_sync_1_page"], quick["variable_calls"]
    assert 0 < one_page < calls  # a longer sync makes more Variable calls than a 1-page one
    assert quick["variable_calls_per_page"] == pytest.approx(
        (calls - one_page) / (quick["pages"] - 1), abs=1e-3
    )
    assert quick["variable_seconds_simulated"] == pytest.approx(calls * 6.6 / 1000, abs=0.01)
    assert quick["peak_rss_items"] == {size: int(size) // bulk.QUICK_DIVISOR for size in SIZES}
    rss = quick["peak_rss_mb"]
    assert all(mb > 0 for mb in rss.values())
    assert quick["peak_rss_ratio"] == pytest.approx(rss["100000"] / rss["1000"], abs=0.01)
    assert all(len(quick[key]) == 3 for key in ("load_average_at_start", "load_average_at_end"))


def test_table_rows_and_the_only_flag(quick: dict[str, Any]) -> None:
    rows = table.rows({"bulk": quick})
    assert [row[0].split(":")[0] for row in rows] == ["bulk"] * 4
    per_page, one_page = quick["variable_calls_per_page"], quick["variable_calls_per_sync_1_page"]
    assert rows[2][1] == f"{table._num(per_page)} / {table._num(one_page)}"
    assert "bulk" in ALL and parse_args(["--only", "bulk"]).only == ["bulk"]


@pytest.mark.parametrize("side", ["dlt_alone", "plain"])
def test_dlt_alone_and_plain_run_with_dlts_own_file_size_not_ours(
    side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_sync_provider.load.loader import FILE_MAX_ITEMS, FILE_MAX_ITEMS_ENV, QUIET_DLT

    monkeypatch.setenv(FILE_MAX_ITEMS_ENV, str(FILE_MAX_ITEMS))  # left by a parent that loaded with us
    for name in QUIET_DLT:
        monkeypatch.delenv(name, raising=False)
    bulk.prepare_dlt(side)
    assert FILE_MAX_ITEMS_ENV not in os.environ
    assert all(os.environ[name] == value for name, value in QUIET_DLT.items())


def test_ours_runs_with_the_loaders_file_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_sync_provider.load.loader import FILE_MAX_ITEMS, FILE_MAX_ITEMS_ENV

    monkeypatch.delenv(FILE_MAX_ITEMS_ENV, raising=False)
    bulk.prepare_dlt("ours")
    assert os.environ[FILE_MAX_ITEMS_ENV] == str(FILE_MAX_ITEMS)
