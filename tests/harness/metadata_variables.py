"""Variables read and written straight in the session's SQLite metadata DB, as ``airflow dags test``
subprocesses see them.

Tests that check what a real run stored go through here rather than through the in-process
``airflow.models.Variable``: that one depends on process-wide Airflow state (the ORM engine and scoped
session, the Task SDK's ``SUPERVISOR_COMMS``, secrets backends) that an earlier test on the same
xdist worker may have changed, and in the full suite it once missed what a subprocess had just
written. Values are stored unencrypted (the session runs with an empty Fernet key).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

_MISSING: Any = object()
ATTEMPTS = 5


def db_path() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"


def _execute(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """``sql`` in one committed transaction on a connection closed after it. Airflow keeps the DB in
    WAL mode; a read racing an ``airflow dags test`` subprocess has failed once with "disk I/O
    error" in a full CI-like run, so a failed attempt is tried again a few times."""
    for attempt in range(ATTEMPTS):
        try:
            with contextlib.closing(sqlite3.connect(db_path(), timeout=30)) as db, db:
                return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


class MetadataVariables:
    """``get``/``set`` with ``airflow.models.Variable``'s signatures, one connection a call."""

    def get(self, key: str, default_var: Any = _MISSING) -> Any:
        rows = _execute("SELECT val, is_encrypted FROM variable WHERE key = ?", (key,))
        if not rows:
            if default_var is _MISSING:
                raise KeyError(f"Variable {key} does not exist")
            return default_var
        value, encrypted = rows[0]
        if encrypted:
            raise AssertionError(f"Variable {key} is encrypted; the test session runs without a Fernet key")
        return value

    def set(self, key: str, value: str) -> None:
        _execute(
            "INSERT INTO variable (key, val, is_encrypted) VALUES (?, ?, 0) "
            "ON CONFLICT (key) DO UPDATE SET val = excluded.val, is_encrypted = 0",
            (key, str(value)),
        )

    def delete_like(self, pattern: str) -> None:
        _execute("DELETE FROM variable WHERE key LIKE ?", (pattern,))
