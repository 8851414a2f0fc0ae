"""Put a ``sync_admin`` DAG (default sources) into the session's metadata DB, once per session.

Only the DB: the DAG file is removed again once serialized.

Shared by the CLI and dashboard tests: a reset is a ``sync_admin`` run, and Airflow can only
create runs of DAGs that the dag-processor (here: ``airflow dags reserialize``) has serialized.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.harness.airflow_cli import AIRFLOW, airflow_env

ADMIN_DAG_FILE = "sync_admin_for_cli_and_dashboard_tests.py"
ADMIN_DAG_SOURCE = '''"""sync_admin over the default sources (installed by tests/cli/admin_dag_deploy.py)."""
from airflow_sync_provider.admin_dag import build_admin_dag

sync_admin = build_admin_dag()
'''
_deployed = False


def admin_dag_in_db() -> bool:
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        if DagModel.get_current("sync_admin", session=session) is None:
            return False
        dag = DBDagBag().get_latest_version_of_dag("sync_admin", session=session)
        return dag is not None and dag.has_task("reset_breaker_airdrops")


def deploy_admin_dag() -> None:
    """Install the admin DAG file and reserialize the dags folder (skipped when already there)."""
    global _deployed
    if _deployed or admin_dag_in_db():
        _deployed = True
        return
    target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / ADMIN_DAG_FILE
    target.write_text(ADMIN_DAG_SOURCE, encoding="utf-8")
    proc = subprocess.run(
        [AIRFLOW, "dags", "reserialize"],
        capture_output=True,
        text=True,
        env=airflow_env(),
        timeout=300,
        check=False,
    )
    # The DB keeps the serialized DAG; the file must not stay in the shared dags folder, where it
    # would shadow the shipped sync_admin for later `airflow dags test` runs in this session.
    target.unlink()
    assert admin_dag_in_db(), f"sync_admin was not serialized:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    _deployed = True


def admin_runs(source: str | None = None) -> list[object]:
    """``sync_admin`` DagRuns (optionally only resets of ``source``), oldest first."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "sync_admin").order_by(DagRun.id).all()
        session.expunge_all()
    if source is None:
        return list(runs)
    return [r for r in runs if (r.conf or {}).get("source") == source]
