"""Every source's state for the dashboard and the CLI in one query, not one Variable read per source.

``read_state_variables`` selects every ``sync_state_*`` row of the ``variable`` table at once (the
ORM decrypts Fernet-encrypted values); ``next_runs`` reads when each sync DAG's next run is due from
the ``dag`` table, also in one query. Both run in the CLI / api-server (metadata DB, no Execution API).

Secrets backends: the operator writes its state with ``Variable.set``, which always lands in the
metadata DB, so the DB is where the state is. A secrets backend that also defines a
``sync_state_<source>`` key would shadow it for the operator's *reads*; such a backend cannot be
listed cheaply, so only the environment-variable backend is checked (``shadowing_env_variables``),
and the dashboard reports those keys as a problem.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncStateError
from airflow_sync_provider.state.store import VARIABLE_PREFIX, SourceState

ENV_PREFIX = "AIRFLOW_VAR_"
DAG_ID_PREFIX = "sync_"  # build_sync_dags' default dag_id_prefix


def read_state_variables(session: Any = None) -> dict[str, str | None]:
    """``{source: raw JSON}`` of every ``sync_state_<source>`` Variable in the metadata DB, in one query."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    def query(s: Any) -> dict[str, str | None]:
        rows = s.query(Variable).filter(Variable.key.startswith(VARIABLE_PREFIX, autoescape=True)).all()
        return {row.key.removeprefix(VARIABLE_PREFIX): row.val for row in rows}

    if session is not None:
        return query(session)
    with create_session() as s:
        return query(s)


def next_runs(sources: Iterable[str], session: Any = None) -> dict[str, dict[str, Any]]:
    """``{source: {"next_run_at", "paused"}}`` for the sources whose ``sync_<source>`` DAG is in the DB.

    One query over the ``dag`` table (``next_dagrun_create_after``: when the scheduler creates the next
    scheduled run; ``None`` for DAGs that run on asset events only).
    """
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    wanted = {f"{DAG_ID_PREFIX}{source}": source for source in sources}

    def query(s: Any) -> dict[str, dict[str, Any]]:
        rows = (
            s.query(DagModel.dag_id, DagModel.next_dagrun_create_after, DagModel.is_paused)
            .filter(DagModel.dag_id.startswith(DAG_ID_PREFIX, autoescape=True))
            .all()
        )
        return {
            wanted[dag_id]: {"next_run_at": due.timestamp() if due else None, "paused": bool(paused)}
            for dag_id, due, paused in rows
            if dag_id in wanted
        }

    if session is not None:
        return query(session)
    with create_session() as s:
        return query(s)


def shadowing_env_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``AIRFLOW_VAR_SYNC_STATE_*`` environment variables: they shadow the DB state for the operator."""
    env = os.environ if environ is None else environ
    prefix = ENV_PREFIX + VARIABLE_PREFIX.upper()
    return sorted(key for key in env if key.upper().startswith(prefix))


def describe_all(
    configs: Mapping[str, SyncConfig],
    raw: Mapping[str, str | None],
    *,
    runs: Mapping[str, Mapping[str, Any]] | None = None,
    now: float | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per source (sorted), from already-read raw states; no DB access.

    Adds to ``describe()``'s fields: ``last_error_stale`` (a closed breaker with no failures since:
    the error is history, e.g. from before a reset), and ``next_run_at`` / ``paused`` when ``runs``
    is given (a probe is sent by the first run at or after ``next_probe_at``).
    """
    from airflow_sync_provider.admin.operations import _error_row, describe

    at = time.time() if now is None else now
    rows = []
    for source, config in sorted(configs.items()):
        try:
            state = SourceState.from_json(raw.get(source), source, on_warning=warn)
            row = describe(state, config, at)
        except SyncStateError as exc:
            row = _error_row(source, config, str(exc))
        row["last_error_stale"] = bool(
            row["last_error"] and row["state"] == "closed" and not row["failure_count"]
        )
        if runs is not None:
            run = runs.get(source) or {}
            row["next_run_at"] = run.get("next_run_at")
            row["paused"] = run.get("paused")
        rows.append(row)
    return rows


def read_states(
    configs: Mapping[str, SyncConfig],
    *,
    raw: Mapping[str, str | None] | None = None,
    with_runs: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """``describe_all`` of ``configs`` with their states read in one query (``raw`` if already read)."""
    states = read_state_variables() if raw is None else raw
    runs = next_runs(configs) if with_runs else None
    return describe_all(configs, states, runs=runs, warn=warn)
