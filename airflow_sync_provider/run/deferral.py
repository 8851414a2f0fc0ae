"""A sync's deferral: its timeout, and what is recorded when no triggerer resumes it in time.

Every deferral has a timeout of its wait plus a margin. Pools count deferred tasks, so without one
a deferred sync whose triggerer is down would keep the source's one pool slot forever. When the
timeout passes, Airflow's scheduler (``check_trigger_timeouts``) drops the trigger and schedules the
task again with ``next_method="__fail__"`` and ``next_kwargs={"error": "Trigger timeout"}``; the
checkpoint the trigger carried is lost, which is why a small progress record (no URLs, no secrets;
counters and the committed loads, ``Checkpoint.load``) is pushed to XCom before deferring: the
operator's ``resume_execution`` reads it back and ends the sync as ``TIMEOUT`` with its result
written like any other (``items_loaded``: the items its loads committed before the deferral).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.sync_run import Checkpoint

DEFER_TIMEOUT_MARGIN = timedelta(minutes=5)
"""Default time a deferred sync may overrun its wait before it ends as ``TIMEOUT``."""
PROGRESS_XCOM = "sync_deferral"
"""XCom key of the progress record pushed before each deferral."""


def defer_timeout(wait_seconds: float, margin: timedelta) -> timedelta:
    """The deferral's timeout: the wait plus ``margin``."""
    return timedelta(seconds=max(0.0, wait_seconds)) + margin


def progress_record(cp: Checkpoint, wait: SyncWaitRequired, timeout: timedelta) -> dict[str, Any]:
    """What the timed-out task needs to report the sync: counters and the wait, nothing else."""
    return {
        "started_at": cp.started_at,
        "retry_count": cp.retry_count,
        "requests_sent": cp.requests_sent,
        "items": cp.items,
        "pages": cp.pages,
        "truncated": cp.truncated,
        "deferrals": cp.deferrals,
        "load": dict(cp.load),
        "wait": wait.seconds,
        "reason": wait.reason,
        "timeout": timeout.total_seconds(),
    }


def is_deferral_timeout(next_method: str, next_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether Airflow resumed the task because its deferral timed out."""
    error = (next_kwargs or {}).get("error")
    return next_method == TRIGGER_FAIL_REPR and error == TriggerFailureReason.TRIGGER_TIMEOUT


def timed_out(record: Mapping[str, Any] | None, now: float) -> tuple[Checkpoint, SyncAbort]:
    """The checkpoint to report from and the ``TIMEOUT`` error of a deferral nobody resumed."""
    record = record if isinstance(record, Mapping) else {}
    names = ("retry_count", "requests_sent", "items", "pages", "truncated", "deferrals", "load")
    checkpoint = Checkpoint(
        started_at=float(record.get("started_at", now)),
        **{name: record[name] for name in names if name in record},
    )
    if record:
        what = (
            f"the wait of {float(record['wait']):.0f}s ({record['reason']}) did not end within the "
            f"deferral timeout of {float(record['timeout']):.0f}s"
        )
    else:
        what = "the deferral timed out (no progress record found)"
    message = (
        f"{what}: no triggerer resumed the task (is the triggerer running?); the sync stopped after "
        f"{checkpoint.items} items and its pool slot is released"
    )
    return checkpoint, SyncAbort(SyncErrorKind.TIMEOUT, message, sent_requests=checkpoint.requests_sent > 0)
