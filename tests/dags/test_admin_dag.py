"""``sync_admin``: params, one reset task per source in that source's pool, routing, and real runs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.admin_dag import ACTIONS, build_admin_dag
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.sources_file import load_sources
from airflow_sync_provider.state.store import SourceState
from tests.harness.airflow_cli import dags_test, install_dag

REPO = Path(__file__).resolve().parents[2]
SHIPPED = load_sources(REPO / "dags" / "sources.yaml")


@pytest.fixture(scope="module")
def admin() -> Any:
    return build_admin_dag(SHIPPED)


def test_manual_only_with_source_and_action_params(admin: Any) -> None:
    assert admin.dag_id == "sync_admin"
    assert admin.schedule is None
    assert type(admin.timetable).__name__ == "NullTimetable"
    assert set(admin.params.keys()) == {"source", "action"}
    source = admin.params.get_param("source")
    assert source.schema["type"] == "string"
    assert source.schema["enum"] == sorted(SHIPPED)
    assert set(source.schema["enum"]) >= set(DEFAULT_SYNC_CONFIGS)
    action = admin.params.get_param("action")
    assert action.schema["enum"] == ["show_states", "reset_breaker"] == list(ACTIONS)
    assert action.value == "show_states"
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        source.resolve("no_such_source")
    with pytest.raises(ParamValidationError):
        action.resolve("delete_everything")


def test_one_reset_task_per_source_in_that_sources_pool(admin: Any) -> None:
    assert set(admin.task_ids) == {"route", "show_states", *(f"reset_breaker_{s}" for s in SHIPPED)}
    route = admin.get_task("route")
    assert route.downstream_task_ids == set(admin.task_ids) - {"route"}
    for source, config in SHIPPED.items():
        task = admin.get_task(f"reset_breaker_{source}")
        assert task.pool == config.pool == f"sync_{source}"
        assert task.pool_slots == 1
        assert task.upstream_task_ids == {"route"}
        assert tuple(task.op_args) == (source,)  # type: ignore[attr-defined]
    assert admin.get_task("show_states").pool == "default_pool"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "airdrops", "action": "reset_breaker"}, "reset_breaker_airdrops"),
        ({"source": "points", "action": "reset_breaker"}, "reset_breaker_points"),
        ({"source": "points", "action": "show_states"}, "show_states"),
        ({}, "show_states"),
        (None, "show_states"),
    ],
)
def test_route_picks_the_task_for_source_and_action(
    admin: Any, params: dict[str, Any] | None, expected: str
) -> None:
    assert admin.get_task("route").python_callable(params=params) == expected
    assert expected in admin.task_ids


def test_custom_configs_and_mapping_keys() -> None:
    configs = [SyncConfig(source="zeta"), SyncConfig(source="alpha")]
    dag = build_admin_dag(configs, dag_id="ops_admin")
    assert dag.dag_id == "ops_admin"
    assert dag.params.get_param("source").schema["enum"] == ["alpha", "zeta"]
    assert dag.params.get_param("source").value == "alpha"
    assert build_admin_dag({c.source: c for c in configs}).task_ids == build_admin_dag(configs).task_ids
    with pytest.raises(ValueError, match=r"configs\['other'\] holds the config of source 'zeta'"):
        build_admin_dag({"other": configs[0]})
    with pytest.raises(ValueError, match="build_admin_dag needs at least one source"):
        build_admin_dag([])


# -- real runs (airflow dags test) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def installed_dags() -> None:
    install_dag(REPO / "dags" / "sync_sources.py")
    install_dag(REPO / "dags" / "sources.yaml")


def _run_ids() -> set[str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r for (r,) in session.query(DagRun.run_id).filter(DagRun.dag_id == "sync_admin")}


def _task_states(before: set[str]) -> dict[str, str | None]:
    """Task states of the one ``sync_admin`` run created since ``before`` (read from the metadata DB)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    [run_id] = _run_ids() - before
    with create_session() as session:
        rows = session.query(TaskInstance.task_id, TaskInstance.state).filter(
            TaskInstance.dag_id == "sync_admin", TaskInstance.run_id == run_id
        )
        return {
            task_id: (None if state is None else str(getattr(state, "value", state)))
            for task_id, state in rows
        }


def _open_breaker_state(source: str, failures: int) -> str:
    now = time.time()
    breaker = BreakerSnapshot(
        state=BreakerState.OPEN,
        failure_count=failures,
        opened_at=now - 30,
        last_error="HTTP 503",
        last_failure_at=now - 30,
    )
    return SourceState(source=source, breaker=breaker, updated_at=now - 30).to_json()


@pytest.mark.airflow
def test_reset_breaker_run_closes_an_open_breaker(installed_dags: None, variables: Any) -> None:
    variables.set("sync_state_airdrops", _open_breaker_state("airdrops", 5))
    variables.set("sync_state_quests", _open_breaker_state("quests", 7))
    before = _run_ids()

    run = dags_test("sync_admin", conf={"source": "airdrops", "action": "reset_breaker"})

    assert run.returncode == 0, run.output[-4000:]
    assert run.state == "success", run.output[-4000:]
    assert "Reset the breaker of airdrops: open (5 failures) -> closed" in run.output
    stored = json.loads(variables.get("sync_state_airdrops"))
    assert stored["source"] == "airdrops"
    assert (stored["breaker"]["state"], stored["breaker"]["failure_count"]) == ("closed", 0)
    assert stored["breaker"]["opened_at"] is None
    # only the chosen source is touched
    other = json.loads(variables.get("sync_state_quests"))
    assert (other["breaker"]["state"], other["breaker"]["failure_count"]) == ("open", 7)
    states = _task_states(before)
    assert states == {
        "route": "success",
        "reset_breaker_airdrops": "success",
        "show_states": "skipped",
        **{f"reset_breaker_{s}": "skipped" for s in SHIPPED if s != "airdrops"},
    }


@pytest.mark.airflow
def test_show_states_run_prints_a_table_of_every_source(installed_dags: None, variables: Any) -> None:
    variables.set("sync_state_points", _open_breaker_state("points", 5))
    before = _run_ids()

    run = dags_test("sync_admin", conf={"source": "airdrops", "action": "show_states"})

    assert run.returncode == 0, run.output[-4000:]
    assert run.state == "success", run.output[-4000:]
    assert re.search(
        r"source\s+breaker\s+failures\s+opened at \(UTC\)\s+next probe \(UTC\)"
        r"\s+window\s+API left\s+learned windows \(UTC\)\s+last result",
        run.output,
    )
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^.*?\b([a-z_]+)\s+(closed|open|half-open)\s+\d+/\d+\s.*$", run.output, re.M)
    }
    assert set(rows) >= set(DEFAULT_SYNC_CONFIGS), run.output[-4000:]
    assert set(rows) == set(SHIPPED)
    assert re.search(r"\bpoints\s+open\s+5/5\s", rows["points"])
    assert re.search(r"\bairdrops\s+closed\s+0/5\s+-\s+-\s+0/60 per 1h\s+-\s+-", rows["airdrops"])
    states = _task_states(before)
    assert states == {
        "route": "success",
        "show_states": "success",
        **{f"reset_breaker_{s}": "skipped" for s in SHIPPED},
    }
    # showing changes nothing
    assert json.loads(variables.get("sync_state_points"))["breaker"]["state"] == "open"
