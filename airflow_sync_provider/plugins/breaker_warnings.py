"""Scheduler-side: while a source's circuit breaker is open, every DAG of that source carries a DAG
warning naming the breaker and when the next probe may go; it is cleared once the breaker closes.

An open breaker turns runs into *skipped* syncs, which the DAG list shows as green; Airflow's DAG
warnings are shown where users look first. The breaker's state is the ``sync_state_<source>``
Variable, written by tasks. The first DAG-run event in the scheduler starts a daemon thread that
compares the open breakers with the warnings every ``PERIOD`` seconds, and at once when a run ends
(a sync that opened or closed a breaker, or a ``sync_admin`` reset).

Airflow knows three warning types, each rewritten by one of its components; ours use
``RUNTIME_VARYING_VALUE``, which the dag-processor replaces with its own on every parse of the DAG
file (it finds none for these DAGs), so the thread writes ours again within ``PERIOD`` seconds. Our
messages start with ``MARK``: a runtime-varying warning of Airflow's own is never overwritten.
A DAG "of a source" is ``sync_<source>`` plus any DAG that has run a sync task in the pool
``sync_<source>``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.listeners import hookimpl

from airflow_sync_provider.state.table import format_utc

log = logging.getLogger(__name__)

PERIOD = 10.0
MARK = "Circuit breaker of "
SYNC_OPERATOR = "RateLimitedSyncOperator"
DASHBOARD = "Browse → Sync breakers"


def breaker_message(row: Mapping[str, Any]) -> str:
    """The warning for one open breaker (a ``describe()`` row)."""
    source, probe = row["source"], row.get("next_probe_at")
    when = f"the next probe may go at {format_utc(probe)}" if probe else "no probe is scheduled"
    failures = f"{row['failure_count']} failed requests"
    opened = f" since {format_utc(row['opened_at'])}" if row.get("opened_at") else ""
    return (
        f"{MARK}{source} is open{opened} (after {failures}): its syncs send nothing and end as skipped; "
        f"{when} (the first run at or after it sends one request). See {DASHBOARD}."
    )


def wanted_warnings(rows: Iterable[Mapping[str, Any]], dags: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``{dag_id: message}`` for every DAG of every source whose breaker is open."""
    wanted: dict[str, str] = {}
    for row in rows:
        if row["state"] == "open":
            for dag_id in dags.get(row["source"], ()):
                wanted[dag_id] = breaker_message(row)
    return wanted


def _dags_of(sources: list[str], session: Any) -> dict[str, set[str]]:
    from airflow.models.dag import DagModel
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    pools = {f"sync_{s}": s for s in sources}
    dags: dict[str, set[str]] = {s: set() for s in sources}
    for dag_id in session.scalars(
        select(DagModel.dag_id).where(DagModel.dag_id.in_([f"sync_{s}" for s in sources]))
    ):
        dags[dag_id.removeprefix("sync_")].add(dag_id)
    query = (
        select(TaskInstance.dag_id, TaskInstance.pool)
        .where(TaskInstance.pool.in_(pools), TaskInstance.operator == SYNC_OPERATOR)
        .distinct()
    )
    for dag_id, pool in session.execute(query):
        dags[pools[pool]].add(dag_id)
    return dags


def sync_warnings(session: Any, now: float | None = None) -> dict[str, str]:
    """Write the breaker warnings the open breakers call for, delete ours that none does; return them."""
    from airflow.models.dagwarning import DagWarning, DagWarningType
    from sqlalchemy import select

    from airflow_sync_provider.admin import operations
    from airflow_sync_provider.state.reader import describe_all, read_state_variables

    raw = read_state_variables(session)
    configs = operations.known_configs(state_sources=raw)
    rows = describe_all(configs, raw, now=now)
    open_sources = [r["source"] for r in rows if r["state"] == "open"]
    wanted = wanted_warnings(rows, _dags_of(open_sources, session) if open_sources else {})
    kind = DagWarningType.RUNTIME_VARYING_VALUE
    stored = {w.dag_id: w for w in session.scalars(select(DagWarning).where(DagWarning.warning_type == kind))}
    for dag_id, warning in stored.items():
        if warning.message.startswith(MARK) and dag_id not in wanted:
            session.delete(warning)
    for dag_id, message in wanted.items():
        current = stored.get(dag_id)
        if current is None or (current.message.startswith(MARK) and current.message != message):
            session.merge(DagWarning(dag_id, kind, message))
    session.commit()
    return wanted


def in_scheduler(argv: list[str] | None = None) -> bool:
    """The scheduler's own process (``airflow scheduler``). ``airflow dags test`` fires the same DAG-run
    events in-process: no thread there (it would only add a second writer to its DB)."""
    return (sys.argv if argv is None else argv)[1:2] == ["scheduler"]


class _Loop:
    """The daemon thread of one scheduler process (started by its first DAG-run event)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        if not in_scheduler():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sync-breaker-warnings", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        from airflow.utils.session import create_session

        while True:
            self._wake.clear()
            try:
                with create_session() as session:
                    sync_warnings(session, time.time())
            except Exception:  # never let this thread end the scheduler, or itself
                log.exception("airflow-sync-provider: updating the breaker DAG warnings failed")
            self._wake.wait(PERIOD)


LOOP = _Loop()


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    LOOP.poke()


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    LOOP.poke()


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    LOOP.poke()
