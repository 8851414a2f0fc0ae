"""``setup``: pools (1 slot, deferred tasks included) and the HTTP connection, on the session's DB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.admin.setup import ensure_connection, ensure_pools, missing_pools
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig

REPO = Path(__file__).resolve().parents[2]
POOLS = [f"sync_{source}" for source in DEFAULT_SYNC_CONFIGS]
CONN_ID = "sync_setup_test"


def _pools(names: list[str]) -> dict[str, tuple[int, bool]]:
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Pool).filter(Pool.pool.in_(names)).all()
        return {p.pool: (p.slots, p.include_deferred) for p in rows}


def _delete_pools(names: list[str]) -> None:
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Pool).filter(Pool.pool.in_(names)).delete(synchronize_session=False)


@pytest.fixture
def no_sync_pools(airflow_db: None) -> Iterator[None]:
    """The seven default pools removed for the test; whatever existed before is back afterwards."""
    before = _pools(POOLS)
    _delete_pools(POOLS)
    yield
    _delete_pools([p for p in POOLS if p not in before])
    if before:
        ensure_pools(c for c in DEFAULT_SYNC_CONFIGS.values() if c.pool in before)


def _connection(conn_id: str) -> Any:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        conn = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if conn is not None:
            session.expunge(conn)
        return conn


@pytest.fixture
def no_test_connection(airflow_db: None) -> Iterator[None]:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    def delete() -> None:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == CONN_ID).delete(synchronize_session=False)

    delete()
    yield
    delete()


@pytest.mark.airflow
def test_ensure_pools_creates_seven_one_slot_pools_then_reports_ok(no_sync_pools: None) -> None:
    configs = list(DEFAULT_SYNC_CONFIGS.values())
    assert missing_pools(configs) == sorted(POOLS)
    assert ensure_pools(configs) == [(pool, "created") for pool in POOLS]
    assert _pools(POOLS) == {pool: (1, True) for pool in POOLS}
    assert missing_pools(configs) == []
    assert ensure_pools(configs) == [(pool, "ok") for pool in POOLS]
    assert _pools(POOLS) == {pool: (1, True) for pool in POOLS}


@pytest.mark.airflow
def test_ensure_pools_repairs_a_pool_with_wrong_slots_or_without_deferred(no_sync_pools: None) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name="sync_quests", slots=3, description="by hand", include_deferred=True)
    Pool.create_or_update_pool(name="sync_yield", slots=1, description="by hand", include_deferred=False)
    configs = [DEFAULT_SYNC_CONFIGS[s] for s in ("airdrops", "quests", "yield")]
    assert missing_pools(configs) == ["sync_airdrops"]
    assert ensure_pools(configs) == [
        ("sync_airdrops", "created"),
        ("sync_quests", "repaired"),
        ("sync_yield", "repaired"),
    ]
    assert _pools(["sync_airdrops", "sync_quests", "sync_yield"]) == {
        "sync_airdrops": (1, True),
        "sync_quests": (1, True),
        "sync_yield": (1, True),
    }


@pytest.mark.airflow
def test_missing_pools_only_reports_the_pools_of_the_given_configs(no_sync_pools: None) -> None:
    ensure_pools([DEFAULT_SYNC_CONFIGS["points"]])
    assert missing_pools([DEFAULT_SYNC_CONFIGS["points"]]) == []
    assert missing_pools([DEFAULT_SYNC_CONFIGS["points"], SyncConfig(source="not_set_up")]) == [
        "sync_not_set_up"
    ]
    assert missing_pools([]) == []


@pytest.mark.airflow
def test_dagbag_warns_about_non_existent_pools_until_setup_ran(no_sync_pools: None) -> None:
    """DagBag(known_pools=<pools in the DB>) -> DagWarning "non-existent pool" per DAG, none after setup.

    Airflow 3.3 computes this warning only when a DagBag is given ``known_pools``; its dag processor
    does not pass them, so without our own check the UI shows no warning (only the scheduler log
    "Tasks using non-existent pool ... will not be scheduled").
    """
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagwarning import DagWarningType
    from airflow.models.pool import Pool

    sync_file = REPO / "dags" / "sync_sources.py"

    def warnings() -> dict[str, str]:
        bag = DagBag(dag_folder=str(sync_file), known_pools={p.pool for p in Pool.get_pools()})
        assert bag.import_errors == {}
        assert all(w.warning_type == DagWarningType.NONEXISTENT_POOL for w in bag.dag_warnings)
        return {w.dag_id: w.message for w in bag.dag_warnings if w.dag_id in {"sync_admin", "sync_points"}}

    missing = warnings()
    assert missing["sync_points"] == "Dag 'sync_points' references non-existent pools: ['sync_points']"
    assert "'sync_points'" in missing["sync_admin"]
    ensure_pools(DEFAULT_SYNC_CONFIGS.values())
    from airflow_sync_provider.sources_file import load_sources

    ensure_pools(load_sources(REPO / "dags" / "sources.yaml").values())
    assert warnings() == {}


@pytest.mark.airflow
def test_ensure_connection_creates_an_http_connection_then_exists_then_replaces(
    no_test_connection: None,
) -> None:
    assert ensure_connection(CONN_ID, "http://127.0.0.1:8765") == "created"
    conn = _connection(CONN_ID)
    assert (conn.conn_type, conn.host, conn.port, conn.schema) == ("http", "127.0.0.1", 8765, "http")
    assert conn.extra_dejson == {"Accept": "application/json"}

    assert ensure_connection(CONN_ID, "https://api.example.com") == "exists"
    conn = _connection(CONN_ID)
    assert (conn.host, conn.port, conn.schema) == ("127.0.0.1", 8765, "http")

    assert ensure_connection(CONN_ID, "https://api.example.com/", replace=True) == "replaced"
    conn = _connection(CONN_ID)
    assert (conn.conn_type, conn.host, conn.port, conn.schema) == ("http", "api.example.com", None, "https")


@pytest.mark.airflow
def test_the_created_connection_gives_the_hook_the_same_base_url(
    no_test_connection: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook

    ensure_connection(CONN_ID, "http://127.0.0.1:8765")
    # outside a task the SDK sees connections only in the environment: hand it the stored one
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", _connection(CONN_ID).as_json())
    hook = RateLimitedSyncHook(conn_id=CONN_ID)
    assert hook.url_for("/airdrops") == "http://127.0.0.1:8765/airdrops"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "example.com:8080",
        "http://",
        "http://:8080",
        "http://host:99999",
        "http://host:port",
        "http://api.example.com/v1",  # a path cannot be kept by host/port/schema: refused, not dropped
        "http://api.example.com?key=1",
        "http://user:secret@api.example.com",
    ],
)
def test_a_bad_url_is_a_value_error_naming_it(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        ensure_connection(CONN_ID, url)
    assert str(raised.value) == f"connection url must look like http://host:port, got {url!r}"
