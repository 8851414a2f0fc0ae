"""Scheduler-side listener: a sync whose pool is missing fails at once, saying why, instead of
waiting in ``scheduled`` forever.

Airflow 3.3 leaves a task whose pool does not exist in ``scheduled`` with only a scheduler log line.
When a run of a sync DAG starts, this listener looks up the ``sync_<source>`` pools of its sync and
reset tasks; for each missing one it fails those tasks, writes a note on the run and a DAG warning
naming the fix (``python -m airflow_sync_provider setup``). It works in the scheduler's own session
(no second writer) and never raises into the scheduler.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from airflow_sync_provider.authoring.admin_names import RESET_TASK_PREFIX

log = logging.getLogger(__name__)

SYNC_OPERATOR = "RateLimitedSyncOperator"
FIX = "run `python -m airflow_sync_provider setup` once (it creates every sync_<source> pool)"


def _guarded(ti: Any) -> bool:
    return ti.operator == SYNC_OPERATOR or str(ti.task_id).startswith(RESET_TASK_PREFIX)


def missing_pool_message(pools: list[str]) -> str:
    return (
        f"Pool {', '.join(pools)} does not exist, so this sync could never start: {FIX}, then trigger again."
    )


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    try:
        fail_tasks_in_missing_pools(dag_run)
    except Exception:  # a listener must never break the scheduler
        log.exception("airflow-sync-provider: the pool check of %s failed", getattr(dag_run, "dag_id", "?"))


def fail_tasks_in_missing_pools(dag_run: Any) -> list[str]:
    """Fail the run's sync/reset tasks whose pool is missing; return the missing pools."""
    from airflow.models.dagwarning import DagWarning, DagWarningType
    from airflow.models.pool import Pool
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return []
    tis = [ti for ti in dag_run.get_task_instances(session=session) if _guarded(ti)]
    wanted = {ti.pool for ti in tis}
    if not wanted:
        return []
    present = set(session.scalars(select(Pool.pool).where(Pool.pool.in_(wanted))))
    missing = sorted(wanted - present)
    if not missing:
        return []
    message = missing_pool_message(missing)
    log.error("%s: %s", dag_run.dag_id, message)
    for ti in tis:
        if ti.pool in missing and ti.state in (None, TaskInstanceState.SCHEDULED):
            ti.set_state(TaskInstanceState.FAILED, session=session)
    dag_run.note = message
    session.merge(DagWarning(dag_run.dag_id, DagWarningType.NONEXISTENT_POOL, message))
    return missing
