"""The demo console's event lines (``EventWatcher``) and which DAGs ``make demo`` triggers itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_sync_provider.demo.up import _unpause_and_start, starts_on_its_own
from airflow_sync_provider.demo.watch import EventWatcher


class FakeApi:
    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.breakers: dict[str, dict[str, Any]] = {}
        self.queries: list[dict[str, list[str]]] = []
        self.dags: dict[str, dict[str, Any]] = {}
        self.reviews: list[dict[str, Any]] = []

    def __call__(self, path: str) -> Any:
        split = urlsplit(path)
        if split.path == "/api/v2/dags/~/dagRuns":
            self.queries.append(parse_qs(split.query))
            return {"dag_runs": list(self.runs)}
        if split.path == "/api/v2/dags/~/dagRuns/~/hitlDetails":
            query = parse_qs(split.query)
            assert (query["response_received"], query["ti_state"]) == (["false"], ["deferred"])
            return {"hitl_details": list(self.reviews), "total_entries": len(self.reviews)}
        if split.path.startswith("/api/v2/dags/sync_"):
            return self.dags[split.path.rsplit("/", 1)[1]]
        assert split.path == "/api/v2/variables"
        assert parse_qs(split.query)["variable_key_prefix_pattern"] == ["sync_state_"]
        variables = [
            {"key": f"sync_state_{s}", "value": json.dumps({"breaker": b})} for s, b in self.breakers.items()
        ]
        return {"variables": [*variables, {"key": "sync_state_broken", "value": "{not json"}]}


def run(dag_id: str, run_id: str, state: str, note: str | None = None) -> dict[str, Any]:
    return {"dag_id": dag_id, "dag_run_id": run_id, "state": state, "note": note}


def test_one_line_per_event_and_nothing_for_healthy_runs() -> None:
    api, clock = FakeApi(), [1_000_000.0]
    watcher = EventWatcher(api, now=lambda: clock[0])
    api.runs = [run("sync_quests", "r1", "success"), run("sync_airdrops", "r2", "running")]
    api.breakers = {"quests": {"state": "closed", "failure_count": 0}}
    assert watcher.poll() == []

    api.runs = [run("sync_airdrops", "r3", "failed", "Sync of airdrops failed: HTTP_ERROR:\n 503")]
    api.breakers["airdrops"] = {"state": "open", "failure_count": 5}
    assert watcher.poll() == [
        "✗ sync_airdrops: run failed. Sync of airdrops failed: HTTP_ERROR: 503",
        "⚡ breaker of airdrops OPENED after 5 failed requests: its runs send nothing now",
    ]
    note = "Nothing synced from airdrops: its circuit breaker is open. The task was skipped. X: y"
    api.runs.append(run("sync_airdrops", "r4", "success", note))
    assert watcher.poll() == ["• sync_airdrops: Nothing synced from airdrops: its circuit breaker is open."]
    assert watcher.poll() == []

    api.breakers["airdrops"] = {"state": "half-open", "failure_count": 5}
    assert watcher.poll() == ["◐ breaker of airdrops half-open: the next request is a probe"]
    api.breakers["airdrops"] = {"state": "closed", "failure_count": 0}
    api.dags["sync_airdrops"] = {"is_paused": False, "next_dagrun_run_after": "1970-01-12T14:00:00Z"}
    assert watcher.poll() == [
        "✓ breaker of airdrops closed: its next run is at 1970-01-12 14:00:00 UTC (trigger sync_airdrops "
        "to sync sooner)"
    ]


def test_a_closed_breaker_says_when_a_paused_or_unscheduled_dag_syncs() -> None:
    api = FakeApi()
    watcher = EventWatcher(api, now=lambda: 1_000_000.0)
    api.breakers = {"a": {"state": "open"}, "b": {"state": "open"}, "c": {"state": "open"}}
    watcher.poll()
    api.breakers = {s: {"state": "closed"} for s in "abc"}
    api.dags = {
        "sync_a": {"is_paused": True, "next_dagrun_run_after": None},
        "sync_b": {"is_paused": False, "next_dagrun_run_after": None},
        "sync_c": {"is_paused": False, "next_dagrun_run_after": "1970-01-12T13:00:00Z"},
    }
    assert watcher.poll() == [
        "✓ breaker of a closed: sync_a is paused: no run until it is unpaused",
        "✓ breaker of b closed: no run is scheduled: trigger sync_b to sync now",
        "✓ breaker of c closed: syncing again: its next run is due now",
    ]


def test_a_waiting_review_is_said_once() -> None:
    api = FakeApi()
    watcher = EventWatcher(api, now=lambda: 1_000_000.0)
    ti = {"id": "ti-1", "dag_id": "sync_community", "dag_run_id": "r1", "task_id": "review"}
    api.reviews = [{"task_instance": ti, "subject": "Review 3 new community submissions"}]
    assert watcher.poll() == [
        "✋ sync_community: a review waits for your answer: Review 3 new community submissions "
        "(Browse → Required Actions)"
    ]
    assert watcher.poll() == []


def test_runs_are_asked_for_since_the_previous_poll() -> None:
    api, clock = FakeApi(), [1_000_000.0]
    watcher = EventWatcher(api, now=lambda: clock[0])
    clock[0] += 5
    watcher.poll()
    clock[0] += 5
    watcher.poll()
    starts = [datetime.fromisoformat(q["end_date_gte"][0]).timestamp() for q in api.queries]
    assert starts == [1_000_000.0, 1_000_005.0]


def test_make_demo_triggers_only_dags_the_scheduler_does_not_start() -> None:
    now = datetime(2026, 11, 29, 21, 3, tzinfo=UTC)
    assert starts_on_its_own({"next_dagrun_run_after": "2026-11-29T21:00:00Z"}, now)  # latest tick: runs
    assert not starts_on_its_own({"next_dagrun_run_after": "2026-11-29T22:00:00+00:00"}, now)  # waits
    assert not starts_on_its_own({"next_dagrun_run_after": None}, now)  # asset-only: never by itself


def test_a_restart_triggers_no_dag_that_ran_before_in_this_home() -> None:
    """One first run per DAG per demo home: a restart does not queue another run behind, say, an
    unanswered review of sync_community."""
    later = "2999-01-01T00:00:00Z"  # not due now: the scheduler will not start these by itself
    runs = {"sync_community": 1, "sync_quests": 0}
    calls: list[tuple[str, Any]] = []

    def api(path: str, body: Any = None, method: str = "") -> Any:
        calls.append((method or ("POST" if body else "GET"), path))
        if method == "PATCH":
            return {"dag_id": path.rsplit("/", 1)[1], "next_dagrun_run_after": later}
        if path.endswith("/dagRuns?limit=1"):
            return {"dag_runs": [], "total_entries": runs[path.split("/")[4]]}
        return {}

    first = _unpause_and_start(api, ["sync_admin", "sync_community", "sync_quests"], trigger=True)
    assert (first.scheduled, first.triggered, first.earlier) == (0, 1, 1)
    assert [p for m, p in calls if m == "POST"] == ["/api/v2/dags/sync_quests/dagRuns"]
    assert first.line(3) == (
        "3 DAGs unpaused; first runs: 0 started by their schedule, 1 triggered once, "
        "1 ran in an earlier demo (not triggered again)"
    )
