"""Requirements 12.6-12.8 in a real Airflow (api-server, scheduler, dag-processor, triggerer; SQLite,
LocalExecutor), with the shipped DAG file and the shipped sources.yaml plus a few test overrides.

- 12.8: an asset event for ``guardian_scans`` posted over REST starts a ``sync_guardian`` run (the
  seconds from event to run start are measured and printed); the source's limiter still applies to
  event-triggered runs, and a burst of events never runs two syncs at once.
- 12.6: an asset event for ``sponsored`` starts an ``asset_triggered`` run of ``sync_sponsored``.
- 12.7: ``sync_community`` waits in ``awaiting_input`` for an administrator; answered over REST:
  Approve publishes every submission, Approve with ``reject_ids`` publishes the rest, Reject
  publishes nothing and records every submission as rejected, and no answer within
  ``review_timeout`` rejects them too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import yaml

from airflow_sync_provider.authoring.review import TIMEOUT_REASON, trim_submission
from airflow_sync_provider.demo.catalog import make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from tests.harness.cluster import AirflowCluster, shipped_dags_cluster

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def sources_for_test() -> dict[str, Any]:
    """The shipped sources.yaml, with overrides that keep the scenarios short and free of clock runs."""
    data = yaml.safe_load((REPO / "dags" / "sources.yaml").read_text())
    sources = data["sources"]
    assert sources["guardian"]["trigger_assets"] == ["guardian_scans"]
    assert sources["sponsored"]["trigger_assets"] == ["sponsored"]
    assert sources["community"]["review"] is True
    # no clock run may take the single active-run slot of these DAGs during the test; sponsored keeps
    # a cron (once a year: only the tick Airflow runs on unpause) so it is still an AssetOrTimeSchedule
    sources["sponsored"] = {**sources["sponsored"], "schedule": "0 0 1 1 *"}
    sources["community"] = {**sources["community"], "schedule": None}
    # two requests per hour, so the third event-triggered run meets a full window
    sources["guardian"] = {**sources["guardian"], "rate_limit": {"max_requests": 2, "window": "1h"}}
    # the same submissions, reviewed with a 3 s response timeout
    sources["community_timeout"] = {
        "endpoint": "/community",
        "schedule": None,
        "review": True,
        "review_timeout": "3s",
    }
    return dict(data)


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo: DemoServer) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("requirements-airflow")
    with shipped_dags_cluster(home, demo.url, sources_for_test()) as c:
        yield c


# -- helpers ------------------------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout}s")


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def asset_id(cluster: AirflowCluster, name: str) -> int:
    def find() -> int | None:
        response = cluster.api("GET", "/api/v2/assets", params={"name_pattern": name, "limit": 100})
        response.raise_for_status()
        ids = [a["id"] for a in response.json()["assets"] if a["name"] == name]
        return ids[0] if ids else None

    return wait_for(f"asset {name} registered", find, timeout=60)


def post_event(cluster: AirflowCluster, name: str, **extra: Any) -> dict[str, Any]:
    response = cluster.api(
        "POST", "/api/v2/assets/events", json={"asset_id": asset_id(cluster, name), "extra": extra}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def runs(cluster: AirflowCluster, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
    response = cluster.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    response.raise_for_status()
    found = [r for r in response.json()["dag_runs"] if run_type is None or r["run_type"] == run_type]
    return sorted(found, key=lambda r: r["run_after"])


def consumed_events(cluster: AirflowCluster, dag_id: str, run_id: str) -> list[int]:
    response = cluster.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")
    response.raise_for_status()
    return sorted(e["id"] for e in response.json()["asset_events"])


def xcom(cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    response = cluster.api(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
    )
    assert response.status_code == 200, f"{task_id}/{key}: {response.text}"
    value = response.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def state(cluster: AirflowCluster, source: str) -> dict[str, Any]:
    return dict(json.loads(cluster.variable(f"sync_state_{source}") or "{}"))


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[12.6-12.8] {line}")


# -- 12.8 guardian --------------------------------------------------------------------------------------


def event_triggered_run(cluster: AirflowCluster, dag_id: str, known: set[str]) -> dict[str, Any]:
    def new_run() -> dict[str, Any] | None:
        fresh = [r for r in runs(cluster, dag_id, "asset_triggered") if r["dag_run_id"] not in known]
        return fresh[0] if fresh and fresh[0]["start_date"] else None

    return wait_for(f"{dag_id}: an asset-triggered run started", new_run, timeout=60, every=0.2)


def test_guardian_event_starts_a_run_within_seconds_and_the_limiter_still_applies(
    cluster: AirflowCluster, demo: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.wait_for_dag("sync_guardian")
    details = cluster.api("GET", "/api/v2/dags/sync_guardian/details").json()
    assert details["timetable_summary"] == "Asset"
    scans = {"name": "guardian_scans", "uri": "guardian_scans", "group": "asset"}
    assert details["asset_expression"] == {"asset": {**scans, "id": asset_id(cluster, "guardian_scans")}}
    demo.clear_requests()
    known: set[str] = set()
    outcomes: list[str] = []
    for n in range(3):
        posted_at = time.monotonic()
        event = post_event(cluster, "guardian_scans", scan=n)
        run = event_triggered_run(cluster, "sync_guardian", known)
        seen_after = time.monotonic() - posted_at
        known.add(run["dag_run_id"])
        to_queued = (ts(run["queued_at"]) - ts(event["timestamp"])).total_seconds()
        to_start = (ts(run["start_date"]) - ts(event["timestamp"])).total_seconds()
        report(
            capsys,
            f"guardian event {n + 1}: run queued {to_queued:.2f}s, started {to_start:.2f}s after the event "
            f"(seen by the test after {seen_after:.2f}s)",
        )
        assert 0 <= to_start <= 30, f"sync_guardian started {to_start:.1f}s after the event"
        finished = cluster.wait_for_run("sync_guardian", run["dag_run_id"])
        assert finished["state"] == "success"
        assert consumed_events(cluster, "sync_guardian", run["dag_run_id"]) == [event["id"]]
        outcomes.append(cluster.task_instances("sync_guardian", run["dag_run_id"])["sync"]["state"])

    # 2 requests per hour: two syncs (one page each), then the window is full and nothing is sent
    assert outcomes == ["success", "success", "skipped"]
    assert len(demo.requests("guardian")) == 2
    guardian = state(cluster, "guardian")
    assert len(guardian["window"]) == 2
    assert guardian["last_result"]["error"] == "RATE_LIMIT_EXCEEDED"
    assert guardian["breaker"]["state"] == "closed"

    # a burst of events: runs one at a time (max_active_runs=1), and every event is followed by a
    # sync that started after it. (Airflow links an event that lands while the scheduler creates a run
    # to the next run, so not every event starts a run of its own; the sync after it still happens.)
    burst = [post_event(cluster, "guardian_scans", burst=i) for i in range(3)]

    def settled() -> list[dict[str, Any]] | None:
        queued = cluster.api("GET", "/api/v2/dags/sync_guardian/assets/queuedEvents").json()
        later = [r for r in runs(cluster, "sync_guardian", "asset_triggered") if r["dag_run_id"] not in known]
        if (
            queued["total_entries"]
            or not later
            or any(r["state"] not in ("success", "failed") for r in later)
        ):
            return None
        return later

    later = wait_for("the burst's runs finished, no event queued", settled, timeout=180, every=1)
    assert 1 <= len(later) <= 3
    for event in burst:
        assert any(ts(r["start_date"]) >= ts(event["timestamp"]) for r in later), f"no sync after {event}"
    windows = sorted((r["start_date"], r["end_date"]) for r in later)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start >= end, f"event-triggered runs overlapped: {windows}"
    consumed = [
        i
        for r in runs(cluster, "sync_guardian")
        for i in consumed_events(cluster, "sync_guardian", r["dag_run_id"])
    ]
    assert len(consumed) == len(set(consumed)), f"an event was consumed twice: {consumed}"
    assert {cluster.task_instances("sync_guardian", r["dag_run_id"])["sync"]["state"] for r in later} == {
        "skipped"
    }
    assert len(demo.requests("guardian")) == 2
    report(capsys, f"burst of 3 guardian events -> {len(later)} run(s), one at a time, nothing sent")


# -- 12.6 sponsored -------------------------------------------------------------------------------------


def test_sponsored_event_starts_an_asset_triggered_run(
    cluster: AirflowCluster, demo: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.wait_for_dag("sync_sponsored")
    details = cluster.api("GET", "/api/v2/dags/sync_sponsored/details").json()
    assert details["timetable_summary"] == "Asset or 0 0 1 1 *"
    # unpausing a cron DAG (catchup off) runs its latest past tick once: let that run end first
    wait_for(
        "the unpause tick of sync_sponsored finished",
        lambda: [
            r for r in runs(cluster, "sync_sponsored", "scheduled") if r["state"] in ("success", "failed")
        ],
    )
    known = {r["dag_run_id"] for r in runs(cluster, "sync_sponsored")}
    before = len(demo.requests("sponsored"))
    event = post_event(cluster, "sponsored", listing="sponsored-0001")
    run = event_triggered_run(cluster, "sync_sponsored", known)
    to_start = (ts(run["start_date"]) - ts(event["timestamp"])).total_seconds()
    report(capsys, f"sponsored event: asset_triggered run started {to_start:.2f}s after the event")
    assert run["run_type"] == "asset_triggered"
    assert cluster.wait_for_run("sync_sponsored", run["dag_run_id"])["state"] == "success"
    assert consumed_events(cluster, "sync_sponsored", run["dag_run_id"]) == [event["id"]]
    ti = cluster.task_instances("sync_sponsored", run["dag_run_id"])["sync"]
    assert (ti["state"], ti["pool"]) == ("success", "sync_sponsored")
    assert len(demo.requests("sponsored")) == before + 1  # one page
    result = xcom(cluster, "sync_sponsored", run["dag_run_id"], "sync", "return_value")
    # issue 13: sponsored is incremental; after the unpause tick landed all 12 listings, this run asks
    # only for what changed since the bookmark: the listing at the bookmark itself (updated_since >=)
    assert f"updated_since={quote(result['bookmark'])}" in demo.requests("sponsored")[-1]["path"]
    assert (result["success"], result["items_processed"]) == (True, 1)
    assert (result["items_loaded"], result["destination"]) == (1, "duckdb sync.sponsored")


# -- 12.7 community review ----------------------------------------------------------------------------

EXPECTED = [trim_submission(make_item("community", i)) for i in range(total_for("community"))]
HITL = "/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/review/-1/hitlDetails"


def awaiting_review(cluster: AirflowCluster, dag_id: str, run_id: str) -> dict[str, Any]:
    def parked() -> dict[str, Any] | None:
        tis = cluster.task_instances(dag_id, run_id)
        if tis.get("sync", {}).get("state") in ("failed", "upstream_failed", "skipped"):
            raise AssertionError(
                f"sync ended {tis['sync']['state']}:\n{cluster.task_log(dag_id, run_id, 'sync')}"
            )
        review = tis.get("review", {})
        return review if review.get("state") == "awaiting_input" else None

    return wait_for(f"{dag_id}/{run_id}: review awaiting_input", parked, timeout=120)


def parked(cluster: AirflowCluster, dag_id: str, run_id: str) -> bool:
    """The scheduler has handled the executor's report that the review parked in awaiting_input.

    Airflow 3.3.2 race: an answer that resumes the task before the scheduler has processed that
    report makes the scheduler fail the resumed task ("finished with state success, but the task
    instance's state attribute is queued"). A human never answers that fast; a script must wait.
    """
    log = (cluster.logs / "scheduler.log").read_text(errors="replace")
    line = rf"TaskInstance Finished: dag_id={dag_id}, task_id=review, run_id={re.escape(run_id)},[^\n]*"
    return re.search(line + r"state=awaiting_input", log) is not None


def answer(cluster: AirflowCluster, dag_id: str, run_id: str, option: str, reject_ids: list[str]) -> None:
    response = cluster.api(
        "PATCH",
        HITL.format(dag=dag_id, run=run_id),
        json={"chosen_options": [option], "params_input": {"reject_ids": reject_ids}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["chosen_options"] == [option]
    assert response.json()["responded_by"]["name"] == "admin"


def published_events(cluster: AirflowCluster) -> list[dict[str, Any]]:
    response = cluster.api(
        "GET", "/api/v2/assets/events", params={"asset_id": asset_id(cluster, "community_published")}
    )
    response.raise_for_status()
    return list(response.json()["asset_events"])


def reviewed_run(
    cluster: AirflowCluster,
    option: str | None,
    reject_ids: list[str] | None = None,
    dag_id: str = "sync_community",
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Trigger, wait for the review, answer it (``None``: let it time out), wait for the end."""
    run_id = cluster.trigger(dag_id)
    awaiting_review(cluster, dag_id, run_id)
    if option is not None:
        wait_for("the scheduler processed the parked review's exit", lambda: parked(cluster, dag_id, run_id))
        answer(cluster, dag_id, run_id, option, reject_ids or [])
    assert cluster.wait_for_run(dag_id, run_id)["state"] == "success"
    return run_id, cluster.task_instances(dag_id, run_id)


def test_review_request_lists_the_submissions(cluster: AirflowCluster) -> None:
    cluster.wait_for_dag("sync_community")
    run_id = cluster.trigger("sync_community")
    try:
        awaiting_review(cluster, "sync_community", run_id)
        # what the Required Actions page lists for this run
        listed = cluster.api(
            "GET", "/api/v2/dags/sync_community/dagRuns/~/hitlDetails", params={"response_received": False}
        ).json()
        assert listed["total_entries"] == 1
        pending = next(iter(listed["hitl_details"]))
        assert (pending["task_instance"]["dag_run_id"], pending["task_instance"]["task_id"]) == (
            run_id,
            "review",
        )
        detail = cluster.api("GET", HITL.format(dag="sync_community", run=run_id)).json()
        assert detail["subject"] == f"Review {len(EXPECTED)} new community submission(s)"
        assert detail["options"] == ["Approve", "Reject"]
        assert detail["defaults"] == ["Reject"]
        assert detail["multiple"] is False
        assert detail["response_received"] is False
        assert detail["params"]["reject_ids"]["value"] == []
        body = detail["body"]
        assert body.count("\n| community-") == len(EXPECTED)
        for submission in EXPECTED:
            assert f"| {submission['id']} |" in body
        sync = xcom(cluster, "sync_community", run_id, "sync", "submissions")
        assert sync == EXPECTED
    finally:
        wait_for(
            "the scheduler processed the parked review's exit",
            lambda: parked(cluster, "sync_community", run_id),
        )
        answer(cluster, "sync_community", run_id, "Reject", [])
        cluster.wait_for_run("sync_community", run_id)


def test_approve_publishes_every_submission(
    cluster: AirflowCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.wait_for_dag("sync_community")
    events_before = len(published_events(cluster))
    run_id, tis = reviewed_run(cluster, "Approve")
    assert {t: tis[t]["state"] for t in ("sync", "review", "publish")} == {
        "sync": "success",
        "review": "success",
        "publish": "success",
    }
    assert tis["sync"]["pool"] == "sync_community"
    assert xcom(cluster, "sync_community", run_id, "publish", "published") == [
        {**s, "approved_by": "admin"} for s in EXPECTED
    ]
    assert xcom(cluster, "sync_community", run_id, "publish", "rejected") == []
    decision = xcom(cluster, "sync_community", run_id, "review", "return_value")
    assert (decision["chosen_options"], decision["timedout"]) == (["Approve"], False)
    events = published_events(cluster)
    assert len(events) == events_before + 1
    assert events[-1]["extra"]["published"] == len(EXPECTED)
    assert events[-1]["source_run_id"] == run_id
    report(capsys, f"community approved over REST -> {len(EXPECTED)} published, asset event emitted")


def test_approve_with_reject_ids_publishes_the_rest(cluster: AirflowCluster) -> None:
    cluster.wait_for_dag("sync_community")
    events_before = len(published_events(cluster))
    dropped = [EXPECTED[0]["id"], EXPECTED[5]["id"]]
    run_id, tis = reviewed_run(cluster, "Approve", dropped)
    assert tis["publish"]["state"] == "success"
    published = xcom(cluster, "sync_community", run_id, "publish", "published")
    assert [s["id"] for s in published] == [s["id"] for s in EXPECTED if s["id"] not in dropped]
    assert xcom(cluster, "sync_community", run_id, "publish", "rejected") == [
        {**s, "reason": "rejected by admin (reject_ids)"} for s in EXPECTED if s["id"] in dropped
    ]
    assert len(published_events(cluster)) == events_before + 1


def test_reject_publishes_nothing_and_records_the_rejections(cluster: AirflowCluster) -> None:
    cluster.wait_for_dag("sync_community")
    events_before = len(published_events(cluster))
    run_id, tis = reviewed_run(cluster, "Reject")
    assert (tis["review"]["state"], tis["publish"]["state"]) == ("success", "skipped")
    assert xcom(cluster, "sync_community", run_id, "publish", "published") == []
    assert xcom(cluster, "sync_community", run_id, "publish", "rejected") == [
        {**s, "reason": "rejected by admin"} for s in EXPECTED
    ]
    log = cluster.task_log("sync_community", run_id, "publish")
    assert f"Rejected {EXPECTED[0]['id']}" in log
    assert f"community: nothing published, {len(EXPECTED)} rejected; no community_published event" in log
    assert all(f"Rejected {s['id']} " in log for s in EXPECTED)
    assert len(published_events(cluster)) == events_before  # no asset event for a rejected batch


def test_no_answer_within_the_review_timeout_rejects(cluster: AirflowCluster) -> None:
    cluster.wait_for_dag("sync_community_timeout")
    run_id, tis = reviewed_run(cluster, None, dag_id="sync_community_timeout")
    assert (tis["review"]["state"], tis["publish"]["state"]) == ("success", "skipped")
    detail = cluster.api("GET", HITL.format(dag="sync_community_timeout", run=run_id)).json()
    assert (detail["chosen_options"], detail["responded_by_user"]) == (["Reject"], None)
    decision = xcom(cluster, "sync_community_timeout", run_id, "review", "return_value")
    assert decision["timedout"] is True
    assert xcom(cluster, "sync_community_timeout", run_id, "publish", "published") == []
    assert xcom(cluster, "sync_community_timeout", run_id, "publish", "rejected") == [
        {**s, "reason": TIMEOUT_REASON} for s in EXPECTED
    ]


# -- the shipped DAGs as the DagBag sees them -----------------------------------------------------------


def test_dagbag_community_holds_a_review_step_and_guardian_is_asset_triggered() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.sdk import Asset
    from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule, AssetTriggeredTimetable

    saved = os.environ.pop("SYNC_SOURCES_FILE", None)
    try:
        bag = DagBag(dag_folder=str(REPO / "dags"))
    finally:
        if saved is not None:
            os.environ["SYNC_SOURCES_FILE"] = saved
    assert bag.import_errors == {}
    community = bag.dags["sync_community"]
    assert community.task_ids == ["sync", "review", "publish"]
    review = community.get_task("review")
    assert isinstance(review, HITLOperator)
    assert review.upstream_task_ids == {"sync"}
    assert community.get_task("publish").outlets == [Asset("community_published")]
    guardian = bag.dags["sync_guardian"]
    assert type(guardian.timetable) is AssetTriggeredTimetable
    assert guardian.timetable.asset_condition == Asset("guardian_scans")
    assert guardian.get_task("sync").pool == "sync_guardian"
    sponsored = bag.dags["sync_sponsored"]
    assert type(sponsored.timetable) is AssetOrTimeSchedule
    assert sponsored.timetable.asset_condition == Asset("sponsored")
    assert sponsored.timetable.timetable.expression == "*/5 * * * *"  # type: ignore[attr-defined]
