"""Scheduler-side listener: a run whose sync did not (fully) sync gets a note saying so.

Airflow marks a run successful when its only task was skipped, so a sync that sent nothing because
the breaker is open looks as healthy as one that synced. The task cannot write the run's note (the
Task SDK has no API for it), so when a run of a sync DAG ends this listener reads each sync task's
result (its XCom ``return_value``) and, unless the run already has a note (a user's, or the pool
check's), writes one: nothing synced (breaker open, window full), partial (stopped at ``max_pages``),
or failed. The Airflow UI marks runs with a note in the grid and shows it on the run's page. It works
in the scheduler's own session and never raises into the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.listeners import hookimpl

from airflow_sync_provider.policy.quota import SPENT

log = logging.getLogger(__name__)

SYNC_OPERATOR = "RateLimitedSyncOperator"
MAX_NOTE = 1000  # the note is shown in the UI; keep it a paragraph, not a log

_LEARNED = "the API said its quota is spent (learned from its headers by this or another run)"
_BLOCKED = {
    "CIRCUIT_BREAKER_OPEN": "its circuit breaker is open",
    "RATE_LIMIT_EXCEEDED": "its rate-limit window is full",
}


def note_for(
    result: Mapping[str, Any] | None, task_state: str | None, *, dry_run: bool = False
) -> str | None:
    """The note for one sync task's ``result`` (its XCom) and state; None for a complete sync."""
    prefix = "Dry run: " if dry_run else ""
    if not isinstance(result, Mapping):
        if task_state == "failed":
            return f"{prefix}Sync failed before it reported a result; see the sync task's log."
        return None
    source = result.get("source", "?")
    error, message = result.get("error"), result.get("error_message") or ""
    if task_state == "skipped" and error in _BLOCKED:
        why = _LEARNED if str(message).startswith(SPENT) else _BLOCKED[error]
        return (
            f"{prefix}Nothing synced from {source}: {why}, no request was sent. "
            f"The task was skipped, so the run counts as successful. {error}: {message}"
        )
    if not result.get("success"):
        return f"{prefix}Sync of {source} failed: {error or 'UNKNOWN'}: {message}"
    if result.get("truncated"):
        items = result.get("items_processed", 0)
        return (
            f"{prefix}Partial sync of {source}: stopped at max_pages after {items} items; "
            "the rest was not fetched in this run."
        )
    return None


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _safely(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _safely(dag_run)


def _safely(dag_run: Any) -> None:
    try:
        annotate(dag_run)
    except Exception:  # a listener must never break the scheduler
        log.exception("airflow-sync-provider: the run note of %s failed", getattr(dag_run, "run_id", "?"))


def annotate(dag_run: Any) -> str | None:
    """Write the note of a finished run whose sync tasks did not all sync fully; return it."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None or dag_run.note:
        return None
    tis = [ti for ti in dag_run.get_task_instances(session=session) if ti.operator == SYNC_OPERATOR]
    if not tis:
        return None
    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.key == "return_value",
            XComModel.task_id.in_([ti.task_id for ti in tis]),
        )
    )
    results = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in rows}
    dry_run = bool((dag_run.conf or {}).get("dry_run"))
    notes = [
        note
        for ti in tis
        if (note := note_for(results.get((ti.task_id, ti.map_index)), _state(ti), dry_run=dry_run))
    ]
    if not notes:
        return None
    note = "\n".join(notes)
    if len(note) > MAX_NOTE:
        note = note[: MAX_NOTE - 1] + "…"
    dag_run.note = note
    return note


def _state(ti: Any) -> str | None:
    state = ti.state
    return None if state is None else str(getattr(state, "value", state))
