"""Deferring a sync for a long wait, and ending one whose deferral timed out.

Before it defers, a sync flushes its state and leaves a small progress record in XCom
(``deferral.progress_record``); a deferral that no triggerer resumed in time reads it back and ends
the sync as ``TIMEOUT`` with what the record says was done (``deferral.timed_out``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.run import deferral
from airflow_sync_provider.run.sync_run import Checkpoint, SyncRun
from airflow_sync_provider.triggers.wait import SyncWaitTrigger


def prepare_deferral(
    context: Mapping[str, Any],
    run: SyncRun,
    guard: SourceGuard,
    wait: SyncWaitRequired,
    *,
    margin: timedelta,
    now: float,
    log: Any,
) -> tuple[SyncWaitTrigger, timedelta]:
    """Store the state and the progress record; the trigger that resumes the sync, and its timeout."""
    source = run.config.source
    run.checkpoint.deferrals += 1
    guard.flush()
    timeout = deferral.defer_timeout(wait.seconds, margin)
    record = deferral.progress_record(run.checkpoint, wait, timeout)
    try:
        context["ti"].xcom_push(key=deferral.PROGRESS_XCOM, value=record)
    except Exception:  # only a timed-out deferral needs it, and it copes without
        log.warning("Could not push the deferral record of %s", source, exc_info=True)
    log.info(
        "%s: deferring for %.1fs (%s); the worker slot is freed; unless resumed within %.0fs the "
        "sync ends as TIMEOUT",
        source,
        wait.seconds,
        wait.reason,
        timeout.total_seconds(),
    )
    trigger = SyncWaitTrigger(
        resume_at=now + wait.seconds, checkpoint=run.checkpoint.to_dict(), reason=wait.reason
    )
    return trigger, timeout


def timed_out(
    context: Mapping[str, Any], source: str, *, now: float, log: Any
) -> tuple[Checkpoint, SyncAbort]:
    """The checkpoint a timed-out deferral left (from its progress record) and its ``TIMEOUT`` error."""
    ti = context["ti"]
    try:
        record = ti.xcom_pull(task_ids=ti.task_id, key=deferral.PROGRESS_XCOM)
    except Exception:
        log.warning("Could not read the deferral record of %s", source, exc_info=True)
        record = None
    return deferral.timed_out(record, now)
