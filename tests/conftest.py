"""Test-wide setup: every test session gets its own AIRFLOW_HOME (SQLite) before Airflow is imported.

Set here, at import, so that in-process ``airflow.models`` calls and ``airflow dags test``
subprocesses share one metadata DB that no developer's real Airflow ever sees.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="sync-provider-tests-"))
_DAGS = _HOME / "dags"
_DAGS.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
    }
)
os.environ.pop("AIRFLOW_CONN_SYNC_DEFAULT", None)

pytest_plugins = ["tests.harness.fixtures"]
