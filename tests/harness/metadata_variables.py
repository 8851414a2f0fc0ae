"""Variables read and written straight in the session's SQLite metadata DB, as ``airflow dags test``
subprocesses see them.

Tests that check what a real run stored go through here rather than through the in-process
``airflow.models.Variable``: that one depends on process-wide Airflow state (the ORM engine and scoped
session, the Task SDK's ``SUPERVISOR_COMMS``, secrets backends) that an earlier test on the same
xdist worker may have changed, and in the full suite it once missed what a subprocess had just
written. Values are stored unencrypted (the session runs with an empty Fernet key).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

_MISSING: Any = object()


def db_path() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"


class MetadataVariables:
    """``get``/``set``/``delete`` with ``airflow.models.Variable``'s signatures, one connection a call."""

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(db_path(), timeout=30)

    def get(self, key: str, default_var: Any = _MISSING) -> Any:
        with self._connect() as db:
            row = db.execute("SELECT val, is_encrypted FROM variable WHERE key = ?", (key,)).fetchone()
        if row is None:
            if default_var is _MISSING:
                raise KeyError(f"Variable {key} does not exist")
            return default_var
        value, encrypted = row
        if encrypted:
            raise AssertionError(f"Variable {key} is encrypted; the test session runs without a Fernet key")
        return value

    def set(self, key: str, value: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO variable (key, val, is_encrypted) VALUES (?, ?, 0) "
                "ON CONFLICT (key) DO UPDATE SET val = excluded.val, is_encrypted = 0",
                (key, str(value)),
            )

    def delete_like(self, pattern: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM variable WHERE key LIKE ?", (pattern,))
