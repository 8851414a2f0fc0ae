"""Run real Airflow from tests: ``airflow dags test`` in a subprocess against the session's DB."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@dataclass
class DagTestRun:
    returncode: int
    output: str

    @property
    def state(self) -> str | None:
        """The DAG run's final state as printed by ``airflow dags test``."""
        for line in reversed(self.output.splitlines()):
            if "DagRun Finished" in line and "state=" in line:
                return line.split("state=", 1)[1].split(",", 1)[0].strip()
        return None

    def task_state(self, task_id: str) -> str | None:
        """The last state ``airflow dags test`` reported for ``task_id``."""
        marker = f"task_id={task_id}"
        found = None
        for line in self.output.splitlines():
            if "new_state=" in line:
                found = line.split("new_state=", 1)[1].split()[0]
            if marker in line and "[DAG TEST] end task" in line:
                return found
        return found


def airflow_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def migrate_db() -> None:
    subprocess.run(
        [AIRFLOW, "db", "migrate"], check=True, capture_output=True, env=airflow_env(), timeout=300
    )


def install_dag(source: Path, name: str | None = None) -> Path:
    """Copy a DAG file into the session's dags folder."""
    target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / (name or source.name)
    shutil.copyfile(source, target)
    return target


def dags_test(
    dag_id: str, *, conf: dict[str, Any] | None = None, timeout: int = 300, **env: str
) -> DagTestRun:
    """Run ``airflow dags test DAG_ID`` and return its output (stdout and stderr together)."""
    cmd = [AIRFLOW, "dags", "test", dag_id]
    if conf is not None:
        cmd += ["--conf", json.dumps(conf)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=airflow_env(**env), timeout=timeout, check=False
    )
    return DagTestRun(proc.returncode, proc.stdout + proc.stderr)
