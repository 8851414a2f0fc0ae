"""``load:`` / ``incremental:`` config, bookmarks in state, the result's load fields (pure, no dlt)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.authoring.params import full_refresh_requested
from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.load.bookkeeping import settle
from airflow_sync_provider.load.incremental import highest, later, with_lag
from airflow_sync_provider.results import SyncResult
from airflow_sync_provider.sources_file import configs_from_mapping, load_sources
from airflow_sync_provider.state.store import SourceState

REPO = Path(__file__).resolve().parents[2]
INC = {"cursor_field": "updated_at", "param": "updated_since"}


def cfg(**data: Any) -> SyncConfig:
    return SyncConfig.from_dict({"source": "airdrops", **data})


def test_load_and_incremental_round_trip_and_default_the_table_to_the_source() -> None:
    config = cfg(
        load={"destination": "postgres", "conn_id": "dw", "primary_key": "id", "write_disposition": "merge"},
        incremental={**INC, "lag": "5m", "initial_value": "2026-01-01T00:00:00Z"},
    )
    assert config.load is not None and config.load.table == "airdrops"
    assert config.load.primary_key == ("id",)
    assert config.incremental is not None and config.incremental.lag == timedelta(minutes=5)
    assert SyncConfig.from_dict(config.to_dict()) == config
    assert cfg().load is None and cfg().to_dict()["load"] is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"load": {"destination": "sqlite"}}, "load.destination"),
        ({"load": {"destination": "postgres"}}, "load.conn_id"),
        ({"load": {"write_disposition": "merge"}}, "load.primary_key"),
        ({"load": {"write_disposition": "upsert", "primary_key": "id"}}, "load.write_disposition"),
        ({"load": {"table": "Bad-Name"}}, "load.table"),
        ({"load": {"dataset": ""}}, "load.dataset"),
        ({"load": {"tabel": "x"}}, "load.tabel"),
        ({"load": "duckdb"}, "load"),
        ({"incremental": {"param": "since"}}, "incremental.cursor_field"),
        ({"incremental": {**INC, "initial_value": True}}, "incremental.initial_value"),
        ({"incremental": {**INC, "lag": "soon"}}, "incremental.lag"),
    ],
)
def test_bad_load_and_incremental_values_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SyncConfigError) as err:
        cfg(**data)
    assert err.value.field == field


def test_top_level_load_applies_to_every_source_and_sync_load_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = {
        "load": {"primary_key": "id", "write_disposition": "merge"},
        "sources": {"quests": {"load": {"table": "all_quests"}}, "points": {"load": None}, "mine": {}},
    }
    configs = configs_from_mapping(data)
    assert (
        configs["airdrops"].load is not None and configs["airdrops"].load.target() == "duckdb sync.airdrops"
    )
    assert configs["quests"].load is not None and configs["quests"].load.table == "all_quests"
    assert configs["quests"].load.write_disposition == "merge"
    assert configs["points"].load is None
    assert configs["mine"].load is not None and configs["mine"].load.table == "mine"
    monkeypatch.setenv("SYNC_LOAD", "{destination: postgres, conn_id: sync_warehouse}")
    assert configs_from_mapping(data)["airdrops"].load.destination == "postgres"  # type: ignore[union-attr]
    monkeypatch.setenv("SYNC_LOAD", "{destination: postgres}")
    with pytest.raises(SyncConfigError, match=r"\$SYNC_LOAD: load.conn_id is required"):
        configs_from_mapping(data)


def test_a_duckdb_dataset_named_like_its_file_is_refused_naming_both() -> None:
    """DuckDB cannot tell schema ``github`` from the database file ``github.duckdb`` (dlt's second table
    then fails with an ambiguous reference): refused at parse time, for a source and for a resource."""
    with pytest.raises(
        SyncConfigError, match=r"load.dataset .*\(sync_data/airdrops.duckdb\).*got 'airdrops'"
    ):
        cfg(load={"destination": "duckdb", "dataset": "airdrops"})
    resources = [{"name": "issues", "path": "/issues", "load": {"dataset": "airdrops"}}]
    with pytest.raises(SyncConfigError, match=r"resources\[0\]\.load\.dataset"):
        cfg(load={"destination": "duckdb"}, resources=resources)
    # another file, or PostgreSQL (a database, not a file), is fine
    assert cfg(load={"dataset": "airdrops", "path": "/data/all.duckdb"}).load is not None
    assert cfg(load={"destination": "postgres", "conn_id": "dw", "dataset": "airdrops"}).load is not None


def test_the_shipped_sources_land_in_duckdb_and_the_seven_demo_sources_are_incremental() -> None:
    configs = load_sources(REPO / "dags" / "sources.yaml")
    assert all(c.load is not None and c.load.destination == "duckdb" for c in configs.values())
    incremental = {name for name, c in configs.items() if c.incremental is not None}
    assert incremental == {
        "airdrops",
        "airdrops_upcoming",
        "quests",
        "yield",
        "points",
        "sponsored",
        "shared_quota",
    }


def test_cursor_order_lag_and_highest() -> None:
    assert later("2026-01-02T00:00:00Z", "2026-01-10T00:00:00+00:00") == "2026-01-10T00:00:00+00:00"
    assert later("2026-01-10T00:00:00Z", "2026-01-02T00:00:00Z") == "2026-01-10T00:00:00Z"
    assert later(None, 5) == 5 and later(7, 5) == 7 and later(7, "x") == 7
    assert with_lag("2026-01-10T00:05:00Z", timedelta(minutes=5)) == "2026-01-10T00:00:00Z"
    assert with_lag(100, timedelta(seconds=30)) == 70
    items = [{"u": "2026-01-03T00:00:00Z"}, {"u": None}, "x", {"u": "2026-01-05T00:00:00Z"}, {}]
    assert highest(items, "u") == "2026-01-05T00:00:00Z"


def test_the_bookmark_survives_the_state_json_and_bad_ones_start_fresh() -> None:
    state = SourceState("airdrops", bookmark="2026-01-05T00:00:00Z")
    assert SourceState.from_json(state.to_json(), "airdrops").bookmark == "2026-01-05T00:00:00Z"
    assert '"bookmark"' not in SourceState("airdrops").to_json()
    warnings: list[str] = []
    raw = state.to_json().replace('"2026-01-05T00:00:00Z"', "[1]")
    assert SourceState.from_json(raw, "airdrops", on_warning=warnings.append).bookmark is None
    assert warnings and "bookmark" in warnings[0]


def result(success: bool = True) -> SyncResult:
    return SyncResult("airdrops", success, 120, 84, None, None, 0, "2026-01-01T00:00:00+00:00")


def test_settle_moves_the_bookmark_only_on_success_and_says_where_the_items_went() -> None:
    config = cfg(load={"primary_key": "id", "write_disposition": "merge"}, incremental=INC)
    progress = {"loaded": 120, "cursor_max": "2026-02-01T00:00:00Z"}
    done, mark = settle(config, progress, "2026-01-01T00:00:00Z", full_refresh=False, result=result())
    assert mark == "2026-02-01T00:00:00Z" and done.bookmark == mark and done.items_loaded == 120
    assert done.summary() == "✓ airdrops: 120 items -> duckdb sync.airdrops in 84 ms"
    failed = dataclass_replace(result(), success=False)
    _, kept = settle(config, progress, "2026-01-01T00:00:00Z", full_refresh=False, result=failed)
    assert kept == "2026-01-01T00:00:00Z"
    _, older = settle(
        config,
        {"cursor_max": "2025-12-01T00:00:00Z"},
        "2026-01-01T00:00:00Z",
        full_refresh=True,
        result=result(),
    )
    assert older == "2025-12-01T00:00:00Z"  # a full refresh resets the bookmark to what it saw
    plain, _ = settle(cfg(), {}, None, full_refresh=False, result=result())
    assert plain.summary() == "✓ airdrops: 120 items in 84 ms" and plain.destination is None
    assert SyncResult.from_dict(done.to_dict()) == done


def dataclass_replace(r: SyncResult, **changes: Any) -> SyncResult:
    import dataclasses

    return dataclasses.replace(r, **changes)


def test_full_refresh_param_is_validated() -> None:
    assert full_refresh_requested({"full_refresh": True}) is True
    assert full_refresh_requested({}) is False
    with pytest.raises(SyncConfigError, match=r"params\.full_refresh"):
        full_refresh_requested({"full_refresh": "yes"})


# -- issue 17 ---------------------------------------------------------------------------------------


def test_incremental_order_is_asc_or_absent_and_round_trips() -> None:
    config = cfg(incremental={**INC, "order": "asc"})
    assert config.incremental is not None and config.incremental.order == "asc"
    assert SyncConfig.from_dict(config.to_dict()) == config
    assert cfg(incremental=INC).incremental.order is None  # type: ignore[union-attr]
    with pytest.raises(SyncConfigError) as err:
        cfg(incremental={**INC, "order": "ascending"})
    assert err.value.field == "incremental.order" and "'ascending'" in str(err.value)


def test_replace_with_incremental_is_refused_naming_both_fields() -> None:
    with pytest.raises(SyncConfigError) as err:
        cfg(load={"write_disposition": "replace"}, incremental=INC)
    assert err.value.field == "load.write_disposition"
    assert "incremental" in str(err.value) and "replace" in str(err.value)
    data = {"load": {"write_disposition": "replace"}, "sources": {"mine": {"incremental": INC}}}
    with pytest.raises(SyncConfigError, match=r"load\.write_disposition .*incremental"):
        configs_from_mapping(data)  # a top-level replace meets a source's incremental
    assert cfg(load={"write_disposition": "replace"}).load is not None  # replace alone is fine


def test_digit_string_cursors_compare_as_numbers_and_keep_their_type() -> None:
    assert later("99", "100") == "100" and later("100", "99") == "100"
    assert highest([{"v": "99"}, {"v": "100"}, {"v": "7"}], "v") == "100"
    assert later("20260102", "20260101") == "20260102"
    assert with_lag("1770000000", timedelta(minutes=5)) == "1769999700"
    assert later("b", "a") == "b"  # other text still compares as text


def test_integer_cursors_with_lag_stay_integers_and_never_go_below_initial_value() -> None:
    from airflow_sync_provider.load.incremental import value_to_send

    sent = with_lag(1770000000, timedelta(minutes=5))
    assert sent == 1769999700 and type(sent) is int
    assert type(with_lag(1770000000, timedelta(seconds=1.5))) is int
    assert with_lag(1.5, timedelta(seconds=1)) == 0.5
    lag = timedelta(minutes=5)
    assert value_to_send(None, 0, lag) == 0 and type(value_to_send(None, 0, lag)) is int
    assert value_to_send(100, 0, lag) == 0
    assert value_to_send(1770000000, 0, lag) == 1769999700
    assert value_to_send("2026-01-01T00:02:00Z", "2026-01-01T00:00:00Z", lag) == "2026-01-01T00:00:00Z"
    assert value_to_send(None, None, lag) is None and value_to_send(5, None, lag) == -295


def truncated(success: bool = True) -> SyncResult:
    return dataclass_replace(result(success), truncated=True)


def test_a_truncated_sync_keeps_the_bookmark_unless_the_source_declares_ascending_order() -> None:
    progress = {"loaded": 50, "cursor_max": "2026-02-01T00:00:00Z"}
    stored = "2026-01-01T00:00:00Z"
    config = cfg(load={"primary_key": "id", "write_disposition": "merge"}, incremental=INC)
    done, mark = settle(config, progress, stored, full_refresh=False, result=truncated())
    assert mark == stored and done.bookmark == stored and done.items_loaded == 50
    _, refreshed = settle(config, progress, stored, full_refresh=True, result=truncated())
    assert refreshed == stored
    ordered = cfg(
        load={"primary_key": "id", "write_disposition": "merge"}, incremental={**INC, "order": "asc"}
    )
    _, moved = settle(ordered, progress, stored, full_refresh=False, result=truncated())
    assert moved == "2026-02-01T00:00:00Z"
