"""The shipped DAGs (``dags/``) as Airflow's DagBag sees them, parsed with no metadata DB at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_sync_provider.authoring.params import apply_params
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS
from airflow_sync_provider.sources_file import load_sources

REPO = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
SYNC_FILE = DAGS_DIR / "sync_sources.py"

# the original design's schedules (sync-scheduler-spec.md), in the order of the default sources
EXPECTED_CRONS = {
    "airdrops": "0 * * * *",
    "airdrops_upcoming": "0 */4 * * *",
    "quests": "0 * * * *",
    "yield": "0 */2 * * *",
    "points": "0 0 * * *",
    "sponsored": "*/5 * * * *",
    "community": "0 * * * *",
}
EXPECTED_DAG_IDS = {"sync_admin", *(f"sync_{s}" for s in EXPECTED_CRONS)}
TRIGGER_PARAMS = {"dry_run", "max_requests", "max_retries", "max_pages"}


@pytest.fixture(scope="module")
def bag() -> DagBag:
    saved = os.environ.pop("SYNC_SOURCES_FILE", None)
    try:
        return DagBag(dag_folder=str(DAGS_DIR))
    finally:
        if saved is not None:
            os.environ["SYNC_SOURCES_FILE"] = saved


@pytest.fixture(scope="module")
def shipped_sources() -> list[str]:
    """The sources dags/sources.yaml describes (the seven defaults plus any the file adds)."""
    return sorted(load_sources(DAGS_DIR / "sources.yaml"))


def cron_of(timetable: Any) -> str:
    """The cron expression of a cron timetable, also inside an ``AssetOrTimeSchedule``."""
    inner = getattr(timetable, "timetable", None)
    if type(timetable).__name__ == "AssetOrTimeSchedule" and inner is not None:
        timetable = inner
    assert type(timetable).__name__ == "CronTriggerTimetable", timetable
    return str(timetable.expression)


def test_dags_folder_imports_cleanly_and_holds_admin_and_one_dag_per_source(
    bag: DagBag, shipped_sources: list[str]
) -> None:
    assert bag.import_errors == {}
    assert set(bag.dags) == {"sync_admin", *(f"sync_{s}" for s in shipped_sources)}
    assert set(bag.dags) >= EXPECTED_DAG_IDS
    assert {Path(dag.fileloc) for dag in bag.dags.values()} == {SYNC_FILE}
    assert list(EXPECTED_CRONS) == list(DEFAULT_SYNC_CONFIGS)


@pytest.mark.parametrize(("source", "cron"), EXPECTED_CRONS.items())
def test_sync_dag_schedule_and_run_settings(bag: DagBag, source: str, cron: str) -> None:
    dag = bag.dags[f"sync_{source}"]
    assert cron_of(dag.timetable) == cron
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    task = dag.get_task("sync")
    assert type(task).__name__ == "RateLimitedSyncOperator"
    assert dag.roots == [task]
    assert task.pool == f"sync_{source}"
    assert task.pool_slots == 1
    assert task.retries == 0
    assert task.source == source  # type: ignore[attr-defined]
    assert {"sync", f"source:{source}"} <= set(dag.tags)


@pytest.mark.parametrize("source", EXPECTED_CRONS)
def test_doc_md_shows_limits_and_where_the_state_lives(bag: DagBag, source: str) -> None:
    dag = bag.dags[f"sync_{source}"]
    config = DEFAULT_SYNC_CONFIGS[source]
    doc = dag.doc_md or ""
    assert f"Sync `{source}`" in doc
    assert f"{config.rate_limit.max_requests} requests per 1h (sliding window)" in doc
    assert f"opens after {config.circuit_breaker.failure_threshold} consecutive failures" in doc
    assert f"| retries per request | {config.max_retries}, backoff 1s x2 up to 1m" in doc
    assert f"`sync_state_{source}`" in doc
    assert f"`sync_{source}` (1 slot)" in doc
    assert f"Schedule: `{EXPECTED_CRONS[source]}`" in doc


def test_sponsored_override_from_sources_yaml_is_applied(bag: DagBag) -> None:
    sponsored = bag.dags["sync_sponsored"].get_task("sync").config  # type: ignore[attr-defined]
    assert sponsored.timeout.total_seconds() == 15
    assert "15s per request" in (bag.dags["sync_sponsored"].doc_md or "")
    airdrops = bag.dags["sync_airdrops"].get_task("sync").config  # type: ignore[attr-defined]
    # the defaults, plus where the shipped file lands the items (issue 13)
    assert airdrops.replace(load=None, incremental=None) == DEFAULT_SYNC_CONFIGS["airdrops"]
    assert airdrops.load.target() == "duckdb sync.airdrops"
    assert airdrops.incremental.param == "updated_since"


def test_the_shipped_shared_quota_source_is_three_tasks_in_its_one_pool(bag: DagBag) -> None:
    """``make demo``'s source with three resources (issue 18): one DAG, one task per resource, every
    task in the source's pool with the source's one config (one window of 20 a minute)."""
    dag = bag.dags["sync_shared_quota"]
    assert sorted(dag.task_ids) == ["airdrops", "points", "quests"]
    for task in dag.tasks:
        assert type(task).__name__ == "RateLimitedSyncOperator"
        assert (task.pool, task.pool_slots) == ("sync_shared_quota", 1)
        assert task.source == "shared_quota"  # type: ignore[attr-defined]
        assert task.resource == task.task_id  # type: ignore[attr-defined]
        assert task.config.rate_limit.max_requests == 20  # type: ignore[attr-defined]
    styles = {t.task_id: t.config.for_resource(t.task_id) for t in dag.tasks}  # type: ignore[attr-defined]
    assert {n: (c.endpoint, c.load.target()) for n, c in styles.items()} == {
        "airdrops": ("/offset/airdrops", "duckdb sync.airdrops"),
        "quests": ("/after/quests", "duckdb sync.quests"),
        "points": ("/points", "duckdb sync.points"),
    }


@pytest.mark.parametrize("source", EXPECTED_CRONS)
def test_trigger_params_only_tighten_the_configured_limits(bag: DagBag, source: str) -> None:
    dag = bag.dags[f"sync_{source}"]
    config = DEFAULT_SYNC_CONFIGS[source]
    params = dag.params
    incremental = {"full_refresh"} if source != "community" else set()  # issue 13
    assert set(params.keys()) == TRIGGER_PARAMS | incremental
    dry_run = params.get_param("dry_run")
    assert dry_run.schema["type"] == "boolean"
    assert dry_run.value is False
    ceilings = {
        "max_requests": (1, config.rate_limit.max_requests),
        "max_retries": (0, config.max_retries),
        "max_pages": (1, config.max_pages),
    }
    for name, (low, high) in ceilings.items():
        param = params.get_param(name)
        assert param.value is None
        assert param.schema["type"] == ["null", "integer"]
        assert (param.schema["minimum"], param.schema["maximum"]) == (low, high)
        assert param.resolve(high) == high
        assert param.resolve(None) is None
        from airflow.sdk.definitions.param import ParamValidationError

        with pytest.raises(ParamValidationError):
            param.resolve(high + 1)
        with pytest.raises(ParamValidationError):
            param.resolve(low - 1)


def _all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_all_strings(k), *_all_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _all_strings(v)]
    return []


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS - {"sync_admin"}))
def test_no_param_can_name_a_host_endpoint_or_url(bag: DagBag, dag_id: str) -> None:
    dag = bag.dags[dag_id]
    for name in dag.params:
        param = dag.params.get_param(name)
        # no free-text param at all: a string param could carry a URL
        assert "string" not in _all_strings(param.schema.get("type")), name
        assert not any(word in name for word in ("host", "url", "endpoint", "conn", "schema", "port"))
    # a trigger conf that tries anyway is ignored: the run's config keeps the endpoint and connection
    source = dag_id.removeprefix("sync_")
    config = bag.dags[dag_id].get_task("sync").config  # type: ignore[attr-defined]
    sneaky = {
        "endpoint": "http://evil.example/x",
        "host": "evil.example",
        "url": "http://evil.example",
        "conn_id": "other",
        "dry_run": False,
    }
    run_config, dry_run = apply_params(config, sneaky)
    assert run_config == config
    assert run_config.endpoint == f"/{source}"
    assert run_config.conn_id == "sync_default"
    assert dry_run is False


def test_dagbag_reports_non_existent_pools_only_when_given_known_pools(shipped_sources: list[str]) -> None:
    """Airflow 3.3's DagWarning "non-existent pool" comes from ``DagBag(known_pools=...)`` only.

    No Airflow 3.3 component passes ``known_pools`` (the dag processor's BundleDagBag does not, and
    its warnings are only the stability check's), so the warning never reaches the UI by itself;
    the scheduler logs "Tasks using non-existent pool ... will not be scheduled" instead.
    ``tests/dags/test_setup.py`` checks the same against the pools in the metadata DB.
    """
    from airflow.models.dagwarning import DagWarningType

    bare = DagBag(dag_folder=str(SYNC_FILE))
    assert bare.dag_warnings == set()
    bag = DagBag(dag_folder=str(SYNC_FILE), known_pools={"default_pool", "sync_airdrops"})
    warnings = {w.dag_id: w for w in bag.dag_warnings}
    assert set(warnings) == {"sync_admin", *(f"sync_{s}" for s in shipped_sources if s != "airdrops")}
    assert all(w.warning_type == DagWarningType.NONEXISTENT_POOL for w in warnings.values())
    assert (
        warnings["sync_quests"].message == "Dag 'sync_quests' references non-existent pools: ['sync_quests']"
    )
    missing_for_admin = sorted(f"sync_{s}" for s in shipped_sources if s != "airdrops")
    assert warnings["sync_admin"].message == (
        f"Dag 'sync_admin' references non-existent pools: {missing_for_admin!r}"
    )


# A fresh interpreter, so that no provider module is imported before the guards are in place.
NO_IO_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []

    def blocked(what):
        def refuse(*args, **kwargs):
            attempts.append(what)
            raise RuntimeError(f"DAG parsing must not touch {what}")
        return refuse

    socket.socket.connect = blocked("socket.connect")
    socket.socket.connect_ex = blocked("socket.connect_ex")
    socket.create_connection = blocked("socket.create_connection")
    socket.getaddrinfo = blocked("socket.getaddrinfo")

    import sqlalchemy.engine
    sqlalchemy.engine.Engine.connect = blocked("Engine.connect")
    sqlalchemy.engine.Engine.raw_connection = blocked("Engine.raw_connection")

    import airflow.settings
    import airflow.utils.session
    airflow.settings.Session = blocked("settings.Session")
    airflow.utils.session.create_session = blocked("create_session")

    import airflow.sdk
    import airflow.models
    from airflow.models.connection import Connection
    airflow.sdk.Variable.get = staticmethod(blocked("sdk.Variable.get"))
    airflow.sdk.Variable.set = staticmethod(blocked("sdk.Variable.set"))
    airflow.sdk.BaseHook.get_connection = staticmethod(blocked("sdk.BaseHook.get_connection"))
    airflow.models.Variable.get = staticmethod(blocked("models.Variable.get"))
    Connection.get_connection_from_secrets = staticmethod(blocked("Connection.get_connection_from_secrets"))

    loaded_before = sorted(m for m in sys.modules if m.startswith("airflow_sync_provider"))
    from airflow.dag_processing.dagbag import DagBag

    results = {}
    for folder in sys.argv[1:]:
        attempts.clear()
        bag = DagBag(dag_folder=folder)
        results[folder] = {
            "attempts": list(attempts),
            "import_errors": bag.import_errors,
            "dag_ids": sorted(bag.dags),
            "loaded_before": loaded_before,
            "pools": {d: sorted({t.pool for t in dag.tasks}) for d, dag in bag.dags.items()},
        }
    print("RESULT " + json.dumps(results))
    """
)


CONTROL_DAG = textwrap.dedent(
    """
    import socket
    from airflow.sdk import DAG, Variable
    from airflow.sdk.bases.hook import BaseHook
    for attempt in (
        lambda: Variable.get("x"),
        lambda: BaseHook.get_connection("sync_default"),
        lambda: socket.create_connection(("127.0.0.1", 9)),
    ):
        try:
            attempt()
        except Exception:
            pass
    with DAG(dag_id="reads_at_parse_time", schedule=None):
        pass
    """
)


@pytest.fixture(scope="module")
def no_io_parse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Parse ``dags/`` and a control DAG file (that does I/O) in one fresh, guarded interpreter."""
    tmp = tmp_path_factory.mktemp("no_io")
    control = tmp / "control"
    control.mkdir()
    (control / "reads_at_parse_time.py").write_text(CONTROL_DAG)
    env = {
        **os.environ,
        # a metadata DB that cannot exist: any DB access would fail even if a guard missed it
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp}/no/such/dir/airflow.db",
        "AIRFLOW__DATABASE__CHECK_MIGRATIONS": "false",
    }
    env.pop("SYNC_SOURCES_FILE", None)
    env.pop("AIRFLOW_CONN_SYNC_DEFAULT", None)
    script = tmp / "parse_without_io.py"
    script.write_text(NO_IO_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(DAGS_DIR), str(control)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=300,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    assert not (tmp / "no").exists()
    results: dict[str, dict[str, Any]] = json.loads(lines[-1].removeprefix("RESULT "))
    return {"dags": results[str(DAGS_DIR)], "control": results[str(control)]}


def test_parsing_touches_no_db_no_variables_no_connections_no_network(
    no_io_parse: dict[str, dict[str, Any]], shipped_sources: list[str]
) -> None:
    result = no_io_parse["dags"]
    # provider discovery may import the package root and its provider info, nothing that parses DAGs
    assert set(result["loaded_before"]) <= {
        "airflow_sync_provider",
        "airflow_sync_provider.provider_info",
        "airflow_sync_provider.version",
    }
    assert result["attempts"] == []
    assert result["import_errors"] == {}
    assert set(result["dag_ids"]) == {"sync_admin", *(f"sync_{s}" for s in shipped_sources)}
    assert result["pools"]["sync_points"] == ["sync_points"]
    assert result["pools"]["sync_shared_quota"] == ["sync_shared_quota"]


def test_the_no_io_guards_do_catch_a_dag_file_that_reads_a_variable_and_the_network(
    no_io_parse: dict[str, dict[str, Any]],
) -> None:
    """Control for the test above: the same guards report a DAG file that does I/O while parsed."""
    result = no_io_parse["control"]
    assert result["attempts"] == [
        "sdk.Variable.get",
        "sdk.BaseHook.get_connection",
        "socket.create_connection",
    ]
    assert result["dag_ids"] == ["reads_at_parse_time"]


def test_print_parse_time_of_the_dags_folder(bag: DagBag, capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion on wall-clock time: prints the median of 3 parses for the issue note."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        again = DagBag(dag_folder=str(DAGS_DIR))
        timings.append(time.perf_counter() - started)
        assert set(again.dags) == set(bag.dags)
    timings.sort()
    with capsys.disabled():
        print(
            f"\n[parse time] dags/ ({len(bag.dags)} DAGs): "
            f"median {timings[1] * 1000:.0f} ms of {len(timings)} parses"
        )
