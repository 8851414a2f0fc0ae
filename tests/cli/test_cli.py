"""``python -m airflow_sync_provider`` as a user runs it: a subprocess against the session's DB."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.state.store import SourceState, VariableStateStore
from tests.cli.admin_dag_deploy import admin_runs, deploy_admin_dag
from tests.harness.airflow_cli import airflow_env

pytestmark = pytest.mark.airflow

DEFAULTS = sorted(DEFAULT_SYNC_CONFIGS)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_sync_provider", *args],
        capture_output=True,
        text=True,
        env=airflow_env(**env),
        timeout=300,
        check=False,
    )


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """The same ``main()`` in this process: for checks that need no fresh interpreter (faster)."""
    from airflow_sync_provider.admin.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    """The defaults plus one extra source, so pool output is exact whatever the dags folder holds."""
    path = tmp_path / "sources.yaml"
    path.write_text("include_defaults: true\nsources:\n  cli_extra: {endpoint: /extra}\n", encoding="utf-8")
    return path


def save_state(variables: Any, source: str, **breaker: Any) -> None:
    snapshot = BreakerSnapshot(**breaker)
    VariableStateStore(variable_api=variables).save(
        SourceState(source=source, breaker=snapshot, updated_at=time.time())
    )


def open_breaker(variables: Any, source: str, failures: int = 5) -> None:
    save_state(
        variables,
        source,
        state=BreakerState.OPEN,
        failure_count=failures,
        opened_at=time.time() - 30,
        last_error="GET /x -> 503 Service Unavailable",
        last_failure_at=time.time() - 30,
    )


def test_setup_creates_pools_and_connection_idempotently(airflow_db: None, sources_file: Path) -> None:
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    expected_pools = sorted(f"sync_{s}" for s in [*DEFAULTS, "cli_extra"])
    url, other_url = "http://127.0.0.1:9/", "http://127.0.0.1:10/"
    with create_session() as session:
        saved = session.query(Connection).filter(Connection.conn_id == "sync_default").one_or_none()
        if saved is not None:  # another test's connection: put it back afterwards
            session.expunge(saved)
            session.query(Connection).filter(Connection.conn_id == "sync_default").delete()
    try:
        first = cli("setup", "--sources-file", str(sources_file), "--connection", url)
        assert first.returncode == 0, first.stderr
        *pool_lines, conn_line = first.stdout.splitlines()
        assert sorted(line.split(": ")[0] for line in pool_lines) == [f"pool {p}" for p in expected_pools]
        assert {line.split(": ")[1] for line in pool_lines} <= {"created", "ok", "repaired"}
        assert conn_line == f"connection sync_default: created ({url})"

        second = cli("setup", "--sources-file", str(sources_file), "--connection", url)
        assert second.returncode == 0, second.stderr
        *pool_lines, conn_line = second.stdout.splitlines()
        assert sorted(pool_lines) == [f"pool {p}: ok" for p in expected_pools]
        assert conn_line == f"connection sync_default: exists ({url})"

        code, out, _ = cli_in_process(
            "setup", "--sources-file", str(sources_file), "--connection", other_url, "--replace-connection"
        )
        assert code == 0
        assert out.splitlines()[-1] == f"connection sync_default: replaced ({other_url})"

        with create_session() as session:
            pools = {p.pool: p for p in session.query(Pool).filter(Pool.pool.in_(expected_pools))}
            assert sorted(pools) == expected_pools
            assert all(p.slots == 1 and p.include_deferred for p in pools.values())
            conn = session.query(Connection).filter(Connection.conn_id == "sync_default").one()
            assert (conn.conn_type, conn.host, conn.port) == ("http", "127.0.0.1", 10)

        code, _, err = cli_in_process("setup", "--sources-file", str(sources_file), "--connection", "ftp://x")
        assert code == 2
        assert err.strip() == "error: connection url must look like http://host:port, got 'ftp://x'"
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "sync_default").delete()
            if saved is not None:
                session.add(saved)


def test_states_json_lists_defaults_and_variable_only_sources(variables: Any, sources_file: Path) -> None:
    open_breaker(variables, "cli_orphan", failures=7)
    proc = cli("states", "--json", "--sources-file", str(sources_file))
    assert proc.returncode == 0, proc.stderr
    states = {s["source"]: s for s in json.loads(proc.stdout)}
    assert set(DEFAULTS) | {"cli_extra", "cli_orphan"} <= set(states)
    orphan = states["cli_orphan"]
    assert (orphan["state"], orphan["failure_count"], orphan["failure_threshold"]) == ("open", 7, 5)
    assert orphan["last_error"] == "GET /x -> 503 Service Unavailable"
    reset_timeout = SyncConfig(source="cli_orphan").circuit_breaker.reset_timeout.total_seconds()
    assert orphan["next_probe_at"] == pytest.approx(orphan["opened_at"] + reset_timeout, abs=1e-3)
    assert states["airdrops"]["window_max_requests"] == 60
    assert "Traceback" not in proc.stderr

    code, table, _ = cli_in_process("states", "--sources-file", str(sources_file))
    assert code == 0
    header, _rule, *rows = table.splitlines()
    assert header.split()[:3] == ["source", "breaker", "failures"]
    orphan_row = next(r for r in rows if r.startswith("cli_orphan "))
    assert orphan_row.split()[1:3] == ["open", "7/5"]


def test_reset_of_an_unknown_source_names_it_and_exits_2(airflow_db: None, sources_file: Path) -> None:
    proc = cli("reset", "no_such_source", "--sources-file", str(sources_file))
    assert proc.returncode == 2
    assert proc.stdout == ""
    known = ", ".join(sorted([*DEFAULTS, "cli_extra"]))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: unknown source 'no_such_source'; known sources: {known}"]
    assert "Traceback" not in proc.stderr


def test_reset_direct_is_refused_and_leaves_the_breaker_alone(variables: Any) -> None:
    """The direct reset bypassed the pool (a running sync could undo it): it is gone, said clearly."""
    open_breaker(variables, "airdrops")
    before = variables.get("sync_state_airdrops")
    proc = cli("reset", "airdrops", "--direct")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "reset --direct was removed" in proc.stderr and "pool sync_airdrops" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert variables.get("sync_state_airdrops") == before


def test_reset_queues_a_sync_admin_run_and_leaves_the_state_to_it(variables: Any) -> None:
    deploy_admin_dag()
    open_breaker(variables, "quests")
    before = len(admin_runs("quests"))
    code, out, err = cli_in_process("reset", "quests")
    assert code == 0, err
    runs = admin_runs("quests")
    assert len(runs) == before + 1
    run: Any = runs[-1]
    assert run.conf == {"source": "quests", "action": "reset_breaker"}
    assert str(run.run_type) in ("manual", "DagRunType.MANUAL")
    assert out.strip() == (
        f"queued reset of quests: sync_admin run {run.run_id} "
        "(runs in pool sync_quests, after any running sync)"
    )
    # queued, not done: the reset happens inside the run, in the pool sync_quests
    assert VariableStateStore(variable_api=variables).load("quests").breaker.state is BreakerState.OPEN


def test_unreachable_db_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "airflow.db"
    proc = cli("states", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{missing}")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: no Airflow metadata DB at {missing} ("), errors
    assert "Traceback" not in proc.stderr and not (tmp_path / "no").exists()


def test_a_db_server_that_does_not_answer_is_one_clear_line() -> None:
    url = "postgresql://nobody@127.0.0.1:1/airflow"
    proc = cli("states", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=url)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: cannot use the Airflow metadata DB at postgresql"
    )
    assert "Traceback" not in proc.stderr


def test_help_names_every_command() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("setup", "states", "reset"):
        assert f"    {command} " in proc.stdout
