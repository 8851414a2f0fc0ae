"""The pieces of the Celery/PostgreSQL bulk figures (issue 20) that run without services: dlt alone
into PostgreSQL and cold in bench/bulk.py, and bench/bulk_postgres.py's figures and record. The
measurement itself is tests/e2e/test_celery_postgres.py. Never timings: the clock is a counter."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import bulk, bulk_postgres

URL = "postgresql://postgres:@127.0.0.1:5432/somewhere"
SECONDS = {"ours": 2.0, "dlt_alone": 4.0, "ours_task": 3.0}


@pytest.fixture
def fake_side(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """``run_side``'s dlt and destination replaced: every ``perf_counter`` call is one second later,
    the sync records its arguments, the table holds every item. The logger level is restored."""
    calls: list[dict[str, Any]] = []
    ticks = itertools.count()
    monkeypatch.setattr(bulk, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    monkeypatch.setattr("airflow_sync_provider.load.loader.import_dlt", lambda: None)
    monkeypatch.setattr(bulk, "sync_dlt_alone", lambda *args: calls.append({"args": args}))
    monkeypatch.setattr(bulk, "rows_in", lambda workdir, name, postgres, dataset: 300)
    logger = logging.getLogger("airflow_sync_provider")
    level = logger.level
    yield calls
    logger.setLevel(level)


def test_a_cold_side_counts_dlts_import_in_its_seconds(
    fake_side: list[dict[str, Any]], tmp_path: Path
) -> None:
    cold = bulk.run_side("dlt_alone", "http://api", 300, tmp_path, 0.0, False, cold=True)
    warm = bulk.run_side("dlt_alone", "http://api", 300, tmp_path, 0.0, False)
    assert (cold["import_seconds"], cold["seconds"]) == (1.0, 2.0)  # the import's tick and the sync's
    assert (warm["import_seconds"], warm["seconds"]) == (1.0, 1.0)  # the sync's only


def test_dlt_alone_lands_in_the_postgres_dataset_it_is_given(
    fake_side: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = bulk.run_side("dlt_alone", "http://api", 300, tmp_path, 0.0, False, postgres=URL, dataset="d")
    assert fake_side[0]["args"] == ("http://api", 300, tmp_path, "measured", URL, "d")
    assert out["rows"] == 300


def test_postgres_is_for_dlt_alone_and_ours_only_and_cold_has_no_warm_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dlt_alone and ours only"):
        bulk.run_side("plain", "http://api", 100, tmp_path, 0.0, False, postgres=URL)
    with pytest.raises(ValueError, match="no warm-up"):
        bulk.run_side("dlt_alone", "http://api", 100, tmp_path, 0.0, True, cold=True)


def test_spawn_hands_the_postgres_url_over_in_the_environment_not_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append((command, kwargs["env"]))
        return subprocess.CompletedProcess(command, 0, stdout='{"rows": 1}\n', stderr="")

    monkeypatch.setattr(bulk.subprocess, "run", run)
    monkeypatch.setenv(bulk.POSTGRES_ENV, "postgresql://stale")
    bulk.spawn(
        "dlt_alone", "http://h:1", 100, variable_ms=0, warm_up=False, postgres=URL, dataset="d", cold=True
    )
    bulk.spawn("dlt_alone", "http://h:1", 100, variable_ms=0, warm_up=False)
    (with_url, env), (without, env_without) = seen
    assert env[bulk.POSTGRES_ENV] == URL and URL not in " ".join(with_url)
    assert with_url[-3:] == ["--cold", "--dataset", "d"]
    assert bulk.POSTGRES_ENV not in env_without  # never a stale URL from the parent's environment
    assert "--cold" not in without and "--dataset" not in without


def test_the_side_command_reads_the_postgres_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got: dict[str, Any] = {}
    monkeypatch.setattr(bulk, "run_side", lambda *args, **kwargs: got.update(kwargs) or {"ok": True})
    monkeypatch.setenv(bulk.POSTGRES_ENV, URL)
    argv = ["side", "dlt_alone", "--url", "http://h:1", "--items", "100", "--workdir", str(tmp_path)]
    assert bulk.main([*argv, "--cold", "--dataset", "d"]) == 0
    assert got == {"postgres": URL, "dataset": "d", "cold": True}
    assert json.loads(capsys.readouterr().out) == {"ok": True}


def test_figures_are_items_over_each_sides_measured_seconds() -> None:
    result = bulk_postgres.figures(10_000, 100, SECONDS, [1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert result == {
        "items": 10_000,
        "pages": 100,
        "rows_per_s": {"ours": 5000.0, "dlt_alone": 2500.0},
        "seconds": SECONDS,
        "load_average_at_start": [1.0, 2.0, 3.0],
        "load_average_at_end": [4.0, 5.0, 6.0],
    }


@pytest.mark.parametrize("seconds", [{**SECONDS, "ours": 0.0}, {"ours": 1.0}, {**SECONDS, "ours_task": -1.0}])
def test_figures_need_a_positive_measured_time_for_every_side(seconds: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive measured time"):
        bulk_postgres.figures(10, 1, seconds, [0.0] * 3, [0.0] * 3)


def test_ours_outside_airflow_gets_its_rate_and_its_place_in_the_line() -> None:
    seconds = {**SECONDS, bulk_postgres.OUTSIDE: 5.0}
    result = bulk_postgres.figures(10_000, 100, seconds, [1.0] * 3, [2.0] * 3)
    assert result["rows_per_s"] == {"ours": 5000.0, "dlt_alone": 2500.0, bulk_postgres.OUTSIDE: 2000.0}
    assert "dlt alone 2,500 rows/s (4.00 s), ours outside Airflow 2,000 rows/s (5.00 s), load" in (
        bulk_postgres.summary_line(result)
    )


def test_ours_goes_to_postgres_through_the_warehouse_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def sync_ours(*args: Any, **kwargs: Any) -> int:
        seen.update(kwargs, conn=os.environ.get(f"AIRFLOW_CONN_{bulk.WAREHOUSE_CONN.upper()}"))
        return 300

    monkeypatch.setattr(bulk, "sync_ours", sync_ours)
    monkeypatch.setattr(bulk, "rows_in", lambda workdir, name, postgres, dataset: 300)
    monkeypatch.setattr(bulk, "prepare_dlt", lambda side: None)
    monkeypatch.delenv(f"AIRFLOW_CONN_{bulk.WAREHOUSE_CONN.upper()}", raising=False)
    out = bulk.run_side("ours", "http://api", 300, tmp_path, 0.0, False, postgres=URL, dataset="d", cold=True)
    assert (seen["postgres"], seen["dataset"], seen["conn"]) == (True, "d", URL)
    assert out["rows"] == 300


def test_record_prints_one_line_and_writes_the_json_only_where_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = bulk_postgres.figures(10_000, 100, SECONDS, [1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    out = tmp_path / "e2e.json"
    assert bulk_postgres.record(result, {bulk_postgres.OUT_ENV: str(out)}) == out
    assert json.loads(out.read_text()) == result
    assert bulk_postgres.record(result, {}) is None
    lines = capsys.readouterr().out.splitlines()
    assert lines == [lines[0]] * 2
    assert lines[0] == (
        "bulk e2e (Celery/PostgreSQL, 10,000 items, 100 pages): ours 5,000 rows/s (2.00 s), "
        "dlt alone 2,500 rows/s (4.00 s), load 1.00 -> 4.00"
    )
