"""``ctx.load`` / the default handler with ``load`` against the demo API and a real DuckDB file.

Waits go to a fake clock; the loads are real (dlt + DuckDB under a temporary ``AIRFLOW_HOME``).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.config.load import IncrementalConfig, LoadConfig
from airflow_sync_provider.demo.catalog import make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.handlers import SyncContext
from airflow_sync_provider.run.sync_run import Checkpoint
from tests.hook import FakeClock, Sleeps, connect, fast_config, make_hook, sync_once

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture
def home(server: DemoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    connect(monkeypatch, server.url)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    server.clear_faults()
    return tmp_path


def ids(home: Path, source: str, table: str | None = None) -> list[str]:
    with duckdb.connect(str(home / "sync_data" / f"{source}.duckdb"), read_only=True) as con:
        return [r[0] for r in con.sql(f"select id from sync.{table or source} order by id").fetchall()]


def merged(source: str = "airdrops", load: dict[str, Any] | None = None, **changes: Any) -> Any:
    settings = {"primary_key": "id", "write_disposition": "merge", **(load or {})}
    return fast_config(source, load=LoadConfig(**settings), **changes)


def test_a_wait_mid_sync_commits_the_fetched_pages_then_the_resumed_sync_lands_the_rest(home: Path) -> None:
    """Each page is landed before the sync defers for the window; the resumes land the rest, none twice."""
    config = merged(
        rate_limit=RateLimitConfig(max_requests=1, window=timedelta(hours=1)),
        max_wait=timedelta(hours=2),
        max_sync_duration=timedelta(hours=3),
        defer_after=timedelta(seconds=5),
    )
    clock = FakeClock()
    hook = make_hook(clock)
    checkpoint = Checkpoint(started_at=clock())
    with pytest.raises(SyncWaitRequired):
        sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=checkpoint)
    assert checkpoint.load["loaded"] == 50
    assert ids(home, "airdrops") == [make_item("airdrops", i)["id"] for i in range(50)]

    for _ in range(3):  # resume after each wait, as the operator does after a deferral
        clock.advance(3600)
        try:
            outcome = sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=checkpoint)
            break
        except SyncWaitRequired:
            assert checkpoint.load["loaded"] == 50 * checkpoint.pages
    assert outcome.error is None and checkpoint.pages == 3
    assert checkpoint.load["loaded"] == total_for("airdrops")
    assert ids(home, "airdrops") == [make_item("airdrops", i)["id"] for i in range(total_for("airdrops"))]


def test_an_abort_under_replace_loads_nothing_and_a_custom_handler_loads_its_own_table(
    home: Path, server: DemoServer
) -> None:
    """``replace`` must not swap the table for a partial fetch; ``ctx.load(items, table=...)`` works."""

    def handler(ctx: SyncContext) -> int:
        ctx.load([{"id": "x-1", "note": "kept"}], table="notes", write_disposition="append")

        def items() -> Iterator[Any]:
            for page in ctx.pages():
                server.set_fault("not_found", source="quests", count=5)
                yield from page.items

        ctx.load(items())
        return ctx.checkpoint.items

    config = merged("quests", {"write_disposition": "replace", "primary_key": ()})
    clock = FakeClock()
    outcome = sync_once(make_hook(clock), config, clock=clock, sleep=Sleeps(clock), handler=handler)
    assert outcome.error is not None and outcome.error.kind is SyncErrorKind.HTTP_ERROR
    assert outcome.result.items_loaded == 1  # only the notes row
    assert ids(home, "quests", "notes") == ["x-1"]
    with duckdb.connect(str(home / "sync_data" / "quests.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()}
    assert "quests" not in tables


def test_without_dlt_a_load_fails_naming_the_extra(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlt", None)  # import dlt -> ImportError
    clock = FakeClock()

    def handler(ctx: SyncContext) -> int:
        return ctx.load([{"id": 1}])

    outcome = sync_once(make_hook(clock), merged(), clock=clock, sleep=Sleeps(clock), handler=handler)
    assert outcome.task_state == "failed"
    assert outcome.error is not None and outcome.error.kind is SyncErrorKind.HANDLER_ERROR
    assert "SyncLoadError" in str(outcome.error)
    assert "pip install 'airflow-sync-provider[load]'" in str(outcome.error)


def test_a_load_with_nothing_to_land_warns_nothing(home: Path) -> None:
    """An empty load drops dlt's pending package without dlt's "drop_pending_packages is deprecated"
    warning, which ended up in every skipped or failed task's log."""

    def nothing(ctx: SyncContext) -> int:
        ctx.load([])
        return 0

    clock = FakeClock()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = sync_once(make_hook(clock), merged(), clock=clock, sleep=Sleeps(clock), handler=nothing)
    assert outcome.error is None
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]


def test_the_first_bookmark_is_logged_as_first_not_as_a_move_from_none(
    home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    inc = IncrementalConfig(cursor_field="updated_at", param="updated_since")
    config = merged(incremental=inc)
    clock = FakeClock()
    hook = make_hook(clock)
    sync_once(hook, config, clock=clock, sleep=Sleeps(clock))
    first = [line for line in capfd.readouterr().out.splitlines() if "bookmark" in line]
    assert any("airdrops: first bookmark '" in line for line in first), first
    assert not any("None" in line for line in first), first


# -- issue 17: replace stages, a timed-out deferral reports its committed loads ----------------------

HOURLY: dict[str, Any] = {
    "rate_limit": RateLimitConfig(max_requests=1, window=timedelta(hours=1)),
    "max_wait": timedelta(hours=2),
    "max_sync_duration": timedelta(hours=3),
    "defer_after": timedelta(seconds=5),
}
QUESTS = [make_item("quests", i)["id"] for i in range(total_for("quests"))]


def replaced(**changes: Any) -> Any:
    return merged("quests", {"write_disposition": "replace", "primary_key": ()}, **changes)


def yesterday(clock: FakeClock) -> Any:
    """A complete replace sync of /quests (80 items, 2 pages), then two hours pass."""
    hook = make_hook(clock)
    done = sync_once(hook, replaced(), clock=clock, sleep=Sleeps(clock))
    assert done.error is None and done.result.items_loaded == len(QUESTS)
    clock.advance(7200)
    return hook


def test_replace_keeps_yesterdays_table_through_a_deferral_and_a_resumed_sync_that_aborts(
    home: Path, server: DemoServer
) -> None:
    clock = FakeClock()
    hook = yesterday(clock)
    assert ids(home, "quests") == QUESTS
    config, checkpoint = replaced(**HOURLY), Checkpoint(started_at=clock())
    with pytest.raises(SyncWaitRequired):  # page 1 fetched, page 2 waits for the window: the sync defers
        sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=checkpoint)
    assert checkpoint.load["staged"]["quests"]["items"] == 50  # committed to the staging place
    assert ids(home, "quests") == QUESTS  # the whole wait long: yesterday's complete table

    clock.advance(3600)
    server.set_fault("not_found", source="quests", count=5)  # the resumed sync aborts
    outcome = sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=checkpoint)
    assert outcome.error is not None and outcome.error.kind is SyncErrorKind.HTTP_ERROR
    assert outcome.result.items_loaded == 0
    assert ids(home, "quests") == QUESTS  # and after


def test_a_resumed_replace_sync_does_not_refetch_its_staged_pages_and_swaps_them_in_at_the_end(
    home: Path, server: DemoServer
) -> None:
    clock = FakeClock()
    hook = yesterday(clock)
    server.clear_requests()
    config, checkpoint = replaced(**HOURLY), Checkpoint(started_at=clock())
    with pytest.raises(SyncWaitRequired):
        sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=checkpoint)
    clock.advance(3600)
    outcome = sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=checkpoint)
    assert outcome.error is None and outcome.result.items_loaded == len(QUESTS)
    assert len(server.requests("quests")) == 2  # page 1 before the deferral, page 2 after: once each
    assert ids(home, "quests") == QUESTS
    assert checkpoint.load["replaced"] == ["quests"] and not checkpoint.load["staged"]


def test_a_truncated_replace_sync_leaves_the_table_as_it_was(home: Path) -> None:
    clock = FakeClock()
    hook = yesterday(clock)
    outcome = sync_once(hook, replaced(max_pages=1), clock=clock, sleep=Sleeps(clock))
    assert outcome.error is None and outcome.result.truncated and outcome.result.items_loaded == 0
    assert ids(home, "quests") == QUESTS


def test_a_timed_out_deferral_reports_the_items_its_loads_committed(home: Path) -> None:
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from airflow_sync_provider import RateLimitedSyncOperator
    from tests.operator.test_deferral_timeout import FakeTI

    clock, ti = FakeClock(), FakeTI()
    hook = make_hook(clock)

    def operator() -> RateLimitedSyncOperator:
        op = RateLimitedSyncOperator(source="airdrops", config=merged(**HOURLY), task_id="sync")
        op._clock, op.__dict__["hook"] = clock, hook
        return op

    with pytest.raises(TaskDeferred):
        operator().execute({"ti": ti, "params": {}})
    assert ids(home, "airdrops") == [make_item("airdrops", i)["id"] for i in range(50)]
    clock.advance(3900)
    timed_out = {"error": TriggerFailureReason.TRIGGER_TIMEOUT.value}
    with pytest.raises(AirflowFailException, match="TIMEOUT"):
        operator().resume_execution(TRIGGER_FAIL_REPR, timed_out, {"ti": ti, "params": {}})
    result = ti.xcoms["return_value"]
    assert (result["error"], result["items_processed"], result["items_loaded"]) == ("TIMEOUT", 50, 50)


def test_an_item_fetched_twice_in_a_replace_sync_lands_once_as_last_fetched(home: Path) -> None:
    """A page delivered again after a deferral, or an item that moved to a later page while the sync
    waited: with a primary key the swapped-in table holds each item once, as last fetched."""
    import logging

    from airflow_sync_provider.load.loader import Loader

    config = merged("quests", {"write_disposition": "replace", "primary_key": "id"})
    progress: dict[str, Any] = {}
    loader = Loader(config, progress, logging.getLogger("test"))
    try:
        loader.load([{"id": "a", "v": 1}, {"id": "b", "v": 1}])  # before the deferral
        loader.load([{"id": "b", "v": 2}, {"id": "c", "v": 1}])  # after it: b moved and changed
        assert loader.publish(truncated=False) == 3
    finally:
        loader.close()
    with duckdb.connect(str(home / "sync_data" / "quests.duckdb"), read_only=True) as con:
        rows = con.sql("select id, v from sync.quests order by id").fetchall()
    assert rows == [("a", 1), ("b", 2), ("c", 1)]
