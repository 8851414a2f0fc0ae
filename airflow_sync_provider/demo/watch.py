"""The demo console's event lines: a run that failed or did not sync, a breaker that opened or closed,
a review (human-in-the-loop) that waits for an answer.

``EventWatcher.poll()`` makes three cheap REST calls (the runs that ended since the last poll, the
``sync_state_*`` Variables, the unanswered reviews) and returns one line per new event; ``make demo``
calls it every few seconds. A breaker that closed also reads its DAG, to say when its next run is.
``fetch(path)`` is an authenticated GET returning the decoded JSON, so tests pass a fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from airflow_sync_provider.state.store import VARIABLE_PREFIX
from airflow_sync_provider.state.table import format_utc

Fetch = Callable[[str], Any]


class EventWatcher:
    """Remembers what it has reported; ``poll()`` returns the lines for what changed since."""

    def __init__(self, fetch: Fetch, *, now: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._now = now
        self._since = datetime.fromtimestamp(now(), UTC)
        self._seen_runs: set[tuple[str, str]] = set()
        self._breakers: dict[str, str] = {}
        self._reviews: set[str] = set()

    def poll(self) -> list[str]:
        return [*self._runs(), *self._breaker_changes(), *self._waiting_reviews()]

    def _waiting_reviews(self) -> list[str]:
        query = urlencode({"response_received": "false", "ti_state": "deferred", "limit": 100})
        body = self._fetch(f"/api/v2/dags/~/dagRuns/~/hitlDetails?{query}") or {}
        lines = []
        for detail in body.get("hitl_details", []):
            ti = detail.get("task_instance") or {}
            key = str(ti.get("id") or (ti.get("dag_id"), ti.get("dag_run_id"), ti.get("task_id")))
            if key in self._reviews:
                continue
            self._reviews.add(key)
            lines.append(
                f"✋ {ti.get('dag_id', '?')}: a review waits for your answer: {detail.get('subject', '')} "
                "(Browse → Required Actions)"
            )
        return lines

    def _runs(self) -> list[str]:
        since = self._since
        self._since = datetime.fromtimestamp(self._now(), UTC)
        query = urlencode({"end_date_gte": since.isoformat(), "order_by": "end_date", "limit": 100})
        body = self._fetch(f"/api/v2/dags/~/dagRuns?{query}") or {}
        lines = []
        for run in body.get("dag_runs", []):
            key = (run["dag_id"], run["dag_run_id"])
            if key in self._seen_runs or run.get("state") not in ("success", "failed"):
                continue
            self._seen_runs.add(key)
            note = first_sentence(run.get("note") or "")
            if run["state"] == "failed":
                lines.append(f"✗ {run['dag_id']}: run failed. {note}".rstrip())
            elif note:
                lines.append(f"• {run['dag_id']}: {note}")
        return lines

    def _breaker_changes(self) -> list[str]:
        query = urlencode({"variable_key_prefix_pattern": VARIABLE_PREFIX, "limit": 100})
        body = self._fetch(f"/api/v2/variables?{query}") or {}
        lines = []
        for variable in body.get("variables", []):
            key = str(variable.get("key", ""))
            if not key.startswith(VARIABLE_PREFIX):
                continue
            source = key[len(VARIABLE_PREFIX) :]
            try:
                breaker = json.loads(variable.get("value") or "{}").get("breaker") or {}
            except (ValueError, AttributeError):
                continue
            state = str(breaker.get("state", "closed"))
            before = self._breakers.get(source, "closed")
            self._breakers[source] = state
            if state != before:
                lines.append(self._breaker_line(source, state, breaker))
        return lines

    def _next_run(self, source: str) -> str:
        """When the source's DAG runs next, as a clause: `its next run is at ...`."""
        try:
            dag = self._fetch(f"/api/v2/dags/sync_{source}") or {}
        except Exception:  # the api-server is busy: the line is still worth printing
            return "syncing again at its next run"
        if dag.get("is_paused"):
            return f"sync_{source} is paused: no run until it is unpaused"
        due = dag.get("next_dagrun_run_after")
        if not due:
            return f"no run is scheduled: trigger sync_{source} to sync now"
        at = datetime.fromisoformat(str(due).replace("Z", "+00:00")).timestamp()
        if at <= self._now():
            return "syncing again: its next run is due now"
        return f"its next run is at {format_utc(at)} (trigger sync_{source} to sync sooner)"

    def _breaker_line(self, source: str, state: str, breaker: dict[str, Any]) -> str:
        if state == "open":
            count = breaker.get("failure_count", "?")
            return f"⚡ breaker of {source} OPENED after {count} failed requests: its runs send nothing now"
        if state == "half-open":
            return f"◐ breaker of {source} half-open: the next request is a probe"
        return f"✓ breaker of {source} closed: {self._next_run(source)}"


def first_sentence(note: str) -> str:
    """The note on one line, up to its first full stop (the rest is on the run's page)."""
    flat = " ".join(note.split())
    head, dot, _ = flat.partition(". ")
    return head + "." if dot else flat
