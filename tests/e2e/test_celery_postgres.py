"""The production topology without Docker: CeleryExecutor on the local PostgreSQL and Redis.

The same components as docker-compose.yaml (api-server, scheduler, dag-processor, triggerer and a
Celery worker with 2 slots), PostgreSQL as the metadata DB and the Celery result backend, Redis as
the broker, the shipped DAG file and two sources served by a DemoServer. Checked:

- a sync runs on the Celery worker (the worker logged the workload, the result backend holds its
  Celery task, the scheduler ran the CeleryExecutor) and its state is in the Postgres ``variable`` table;
- two overlapping runs of one source run one at a time although the worker has 2 slots (the 1-slot pool);
- a 429 with an 8 s Retry-After on page 2 defers the task to the triggerer, and it resumes on a Celery
  worker at page 2 (page 1 is not read again);
- issue 13: a sync's items land in PostgreSQL, each once;
- issue 20: rows per second of a bulk sync into PostgreSQL, ours (on the Celery worker) and dlt's
  ``rest_api`` alone, same pages (bench/bulk_postgres.py prints the figures and writes them to
  ``$SYNC_BENCH_E2E_OUT`` if set).

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth, database ``test``) and Redis at
127.0.0.1:6379: skipped with a reason where they are absent, failed under CI=true. Uses a fresh
database (dropped after) and an empty Redis database number (flushed after).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_sync_provider.demo.catalog import make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from bench import bulk, bulk_postgres
from tests.harness.cluster import AirflowCluster, free_port
from tests.harness.fixtures import require_service

pytestmark = [pytest.mark.services, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_PORT = 6379
BULK_ITEMS = 50_000  # 500 pages of 100
BULK_PAGES = -(-BULK_ITEMS // bulk.PAGE)
SOURCES = {
    "include_defaults": False,
    "sources": {
        "quests": {"schedule": None},  # 80 items: two pages
        "airdrops": {"schedule": None, "backoff": {"initial_delay": "100ms", "max_delay": "200ms"}},
        # issue 13: lands its items in PostgreSQL (schema sync_loaded of the test database)
        "points": {
            "schedule": None,
            "load": {
                "destination": "postgres",
                "conn_id": "sync_warehouse",
                "dataset": "sync_loaded",
                "primary_key": "id",
                "write_disposition": "merge",
            },
        },
        # issue 20: bench/bulk.py's "ours" config (a limit and max_pages that do not bind), into PostgreSQL
        "bulk": {
            "schedule": None,
            "endpoint": bulk.endpoint(BULK_ITEMS),
            "rate_limit": {"max_requests": bulk.MAX_REQUESTS, "window": "1h"},
            "max_pages": BULK_PAGES,
            "load": {
                "destination": "postgres",
                "conn_id": "sync_warehouse",
                "dataset": "bulk_ours",
                "primary_key": "id",
                "write_disposition": "merge",
            },
        },
    },
}


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_ok() -> bool:
    if not port_open(PG["port"]):
        return False
    try:
        import psycopg2

        psycopg2.connect(dbname="test", connect_timeout=5, **PG).close()  # type: ignore[arg-type]
    except Exception:
        return False
    return True


def redis_ok() -> bool:
    if not port_open(REDIS_PORT):
        return False
    try:
        import redis

        return bool(redis.Redis(port=REDIS_PORT, socket_timeout=5).ping())
    except Exception:
        return False


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    require_service("PostgreSQL", postgres_ok())
    import psycopg2

    name = f"sync_provider_celery_{secrets.token_hex(4)}"
    admin = psycopg2.connect(dbname="test", **PG)  # type: ignore[arg-type]
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def redis_db() -> Iterator[int]:
    require_service("Redis", redis_ok())
    import redis

    for number in range(15, 0, -1):  # an empty database number, so no one else's keys are flushed
        client = redis.Redis(port=REDIS_PORT, db=number)
        if client.dbsize() == 0:
            break
    else:
        pytest.fail("no empty Redis database number (1-15) to use as the Celery broker")
    try:
        yield number
    finally:
        client.flushdb()


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, database: str, redis_db: int, demo: DemoServer
) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("celery-airflow")
    sources_file = home / "sources.yaml"
    sources_file.write_text(yaml.safe_dump(SOURCES))
    host, port = demo.url.split("://", 1)[1].split(":")
    pg_url = postgres_url(database)
    c = AirflowCluster(
        home,
        sql_alchemy_conn=pg_url.replace("postgresql://", "postgresql+psycopg2://"),
        executor="CeleryExecutor",
        components=("api-server", "scheduler", "dag-processor", "triggerer", "celery worker --concurrency 2"),
        extra_env={
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{pg_url}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "SYNC_SOURCES_FILE": str(sources_file),
            "AIRFLOW_CONN_SYNC_DEFAULT": json.dumps({"conn_type": "http", "host": host, "port": int(port)}),
            "AIRFLOW_CONN_SYNC_WAREHOUSE": pg_url,
        },
    )
    shutil.copyfile(REPO / "dags" / "sync_sources.py", c.dags / "sync_sources.py")
    try:
        c.start()
        c.run(
            sys.executable,
            "-c",
            "import sys; from airflow_sync_provider.admin.setup import ensure_pools; "
            "from airflow_sync_provider.sources_file import load_sources; "
            "print(ensure_pools(load_sources(sys.argv[1]).values()))",
            str(sources_file),
        )
        yield c
    finally:
        c.stop()


def postgres_url(database: str, *, empty_password: bool = False) -> str:
    """The test database's URL; dlt wants the password field, empty for trust auth (``user:@``)."""
    user = f"{PG['user']}:" if empty_password else PG["user"]
    return f"postgresql://{user}@{PG['host']}:{PG['port']}/{database}"


def sql(database: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg2

    with contextlib.closing(psycopg2.connect(dbname=database, **PG)) as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute(query, args)
        return list(cur.fetchall())


def celery_results(database: str) -> list[str]:
    """Task ids in the Celery result backend, once none is still STARTED (it finishes just after the TI)."""
    deadline = time.monotonic() + 60
    while True:
        rows = sql(database, "SELECT task_id, status FROM celery_taskmeta")
        if all(status == "SUCCESS" for _, status in rows) or time.monotonic() > deadline:
            assert {status for _, status in rows} <= {"SUCCESS"}, rows
            return [task_id for task_id, _ in rows]
        time.sleep(0.5)


def worker_log(cluster: AirflowCluster) -> str:
    return (cluster.logs / "celery-worker---concurrency-2.log").read_text(errors="replace")


def test_sync_runs_on_the_celery_worker_and_its_state_is_in_postgres(
    cluster: AirflowCluster, demo: DemoServer, database: str
) -> None:
    cluster.wait_for_dag("sync_quests")
    demo.clear_requests()
    demo.set_fault("slow", source="quests", delay=1.0)
    try:
        run_ids = [cluster.trigger("sync_quests") for _ in range(2)]
        finished = [cluster.wait_for_run("sync_quests", run_id) for run_id in run_ids]
    finally:
        demo.clear_faults("quests")
    assert [r["state"] for r in finished] == ["success", "success"], cluster.log_tail("scheduler")
    for run_id in run_ids:
        ti = cluster.task_instances("sync_quests", run_id)["sync"]
        assert (ti["state"], ti["pool"], ti["queue"], ti["try_number"]) == (
            "success",
            "sync_quests",
            "default",
            1,
        )
        assert ti["hostname"]

    # one sync at a time although the worker has two slots: the pool sync_quests has one
    assert len(demo.requests("quests")) == 2 * 2
    assert demo.max_concurrency("quests") == 1
    windows = sorted((r["start_date"], r["end_date"]) for r in finished)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start >= end, f"runs overlapped: {windows}"

    # it ran through Celery: the scheduler's executor, the worker's log, the result backend's rows
    assert "CeleryExecutor" in (cluster.home / "component-logs" / "scheduler.log").read_text(errors="replace")
    log = worker_log(cluster)
    assert "celery@" in log and "execute_workload" in log, log[-3000:]
    assert len(celery_results(database)) == 2  # one Celery task per sync

    # the state lives in the Postgres-backed Variable
    rows = sql(database, "SELECT key FROM variable WHERE key = %s", "sync_state_quests")
    assert rows == [("sync_state_quests",)]
    state = json.loads(cluster.variable("sync_state_quests") or "{}")
    assert state["breaker"] == {**state["breaker"], "state": "closed", "failure_count": 0}
    assert len(state["window"]) == 4
    assert state["last_result"]["success"] is True
    assert state["last_result"]["items_processed"] == total_for("quests")


def test_a_long_retry_after_defers_to_the_triggerer_and_resumes_on_a_worker(
    cluster: AirflowCluster, demo: DemoServer, database: str
) -> None:
    """The 429 is on page 2: the resumed part asks for page 2 again and never re-reads page 1."""
    cluster.wait_for_dag("sync_airdrops")
    demo.clear_requests()
    demo.set_fault("slow", source="airdrops", count=1, delay=3.0)  # page 1 takes 3 s to answer
    before = len(celery_results(database))
    try:
        run_id = cluster.trigger("sync_airdrops")
        # while page 1 is being answered, queue the 429 for the next request: page 2
        deadline = time.monotonic() + 120
        while not demo.requests("airdrops") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert demo.requests("airdrops"), "page 1 was never requested"
        demo.set_fault("rate_limit", source="airdrops", count=1, retry_after=8)
        assert cluster.wait_for_run("sync_airdrops", run_id)["state"] == "success"
    finally:
        demo.clear_faults("airdrops")
    ti = cluster.task_instances("sync_airdrops", run_id)["sync"]
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    requests_seen = demo.requests("airdrops")
    assert [(r["path"], r["status"]) for r in requests_seen] == [
        ("/airdrops", 200),
        ("/airdrops?cursor=50&limit=50", 429),
        ("/airdrops?cursor=50&limit=50", 200),  # the same page after the resume; page 1 not re-read
        ("/airdrops?cursor=100&limit=50", 200),
    ]
    assert requests_seen[2]["start"] - requests_seen[1]["end"] >= 8
    # the first part and the resumed part are two Celery tasks
    assert len(celery_results(database)) - before == 2
    state = json.loads(cluster.variable("sync_state_airdrops") or "{}")
    last = state["last_result"]
    assert (last["success"], last["retry_count"], last["items_processed"]) == (True, 1, total_for("airdrops"))
    log = cluster.task_log("sync_airdrops", run_id, "sync")
    assert "airdrops: deferring for" in log
    assert "Pausing task as DEFERRED" in log
    assert "Resuming the sync of airdrops after a wait (deferral 1)" in log


def test_a_sync_on_the_celery_worker_lands_its_items_in_postgres(
    cluster: AirflowCluster, demo: DemoServer, database: str
) -> None:
    """Issue 13: the items of a Celery-run sync are rows of ``sync_loaded.points``, each once (merge)."""
    pytest.importorskip("dlt")
    cluster.wait_for_dag("sync_points")
    runs = [cluster.trigger("sync_points") for _ in range(2)]
    finished = [cluster.wait_for_run("sync_points", run_id) for run_id in runs]
    assert [r["state"] for r in finished] == ["success", "success"], worker_log(cluster)[-3000:]
    rows = sql(database, "SELECT id, points FROM sync_loaded.points ORDER BY id")
    expected = [make_item("points", i) for i in range(total_for("points"))]
    assert rows == [(item["id"], item["points"]) for item in expected]
    state = json.loads(cluster.variable("sync_state_points") or "{}")
    assert state["last_result"]["items_loaded"] == total_for("points")
    assert state["last_result"]["destination"] == "postgres sync_loaded.points"


def api_seconds(requests_seen: list[dict[str, Any]]) -> float:
    """From the first page request's arrival at the demo API to the last one's answer."""
    return float(requests_seen[-1]["end"] - requests_seen[0]["start"])


def task_seconds(ti: dict[str, Any]) -> float:
    """The task instance's running time (its start_date to its end_date)."""
    start, end = (datetime.fromisoformat(ti[key]) for key in ("start_date", "end_date"))
    return (end - start).total_seconds()


def test_bulk_rows_per_second_ours_on_celery_and_dlt_alone_into_postgres(
    cluster: AirflowCluster, demo: DemoServer, database: str
) -> None:
    """Issue 20: the same pages (``bulk``, Link header, merge on id) into the same PostgreSQL, ours run
    by the scheduler on the Celery worker and dlt's ``rest_api`` alone in a fresh interpreter; and ours
    in a fresh interpreter too (what the Airflow task around the sync costs).

    Rows per second = items / seconds from the sync's start to its last commit, each in a process
    that has not synced before (dlt's import counted on every side, interpreter start-up on none):
    ours from the SyncResult's ``duration_ms``, the others from bench/bulk.py's cold runs. Only
    invariants are asserted, never a time or a ratio."""
    pytest.importorskip("dlt")
    cluster.wait_for_dag("sync_bulk")
    demo.clear_requests()
    load_at_start = list(os.getloadavg())
    run_id = cluster.trigger("sync_bulk")
    assert cluster.wait_for_run("sync_bulk", run_id)["state"] == "success", worker_log(cluster)[-3000:]
    ours_requests = demo.requests("bulk")
    demo.clear_requests()
    alone = bulk.spawn(
        "dlt_alone",
        demo.url,
        BULK_ITEMS,
        variable_ms=0.0,
        warm_up=False,
        postgres=postgres_url(database, empty_password=True),
        dataset="bulk_dlt_alone",
        cold=True,
    )
    alone_requests = demo.requests("bulk")
    demo.clear_requests()
    outside = bulk.spawn(  # the same sync outside Airflow: what the task around it costs
        "ours",
        demo.url,
        BULK_ITEMS,
        variable_ms=bulk.VARIABLE_MS,
        warm_up=False,
        postgres=postgres_url(database, empty_password=True),
        dataset="bulk_ours_outside",
        cold=True,
    )
    load_at_end = list(os.getloadavg())
    outside_requests = demo.requests("bulk")

    # the same pages, each once, every one answered
    paths = [r["path"] for r in ours_requests]
    assert paths == [r["path"] for r in alone_requests] == [r["path"] for r in outside_requests]
    assert len(ours_requests) == BULK_PAGES
    assert {r["status"] for r in ours_requests + alone_requests + outside_requests} == {200}
    # each table holds exactly the N ids, the same ones (merge on id: no duplicates)
    for dataset in ("bulk_ours", "bulk_dlt_alone", "bulk_ours_outside"):
        assert sql(database, f"SELECT count(*), count(DISTINCT id) FROM {dataset}.bulk") == [
            (BULK_ITEMS, BULK_ITEMS)
        ]
    unmatched = "SELECT count(*) FROM bulk_ours.bulk o FULL JOIN bulk_dlt_alone.bulk d USING (id) "
    assert sql(database, unmatched + "WHERE o.id IS NULL OR d.id IS NULL") == [(0,)]
    result = json.loads(cluster.variable("sync_state_bulk") or "{}")["last_result"]
    assert (result["success"], result["truncated"], result["items_loaded"]) == (True, False, BULK_ITEMS)
    assert result["destination"] == "postgres bulk_ours.bulk"
    assert alone["rows"] == outside["rows"] == BULK_ITEMS

    ti = cluster.task_instances("sync_bulk", run_id)["sync"]
    seconds = {
        "ours": result["duration_ms"] / 1000,  # the sync (after its state is read) to its last commit
        "dlt_alone": alone["seconds"],  # the same span in its interpreter
        "dlt_alone_import": alone["import_seconds"],  # part of dlt_alone
        bulk_postgres.OUTSIDE: outside["seconds"],  # ours in its own interpreter, dlt's import counted
        "ours_task": task_seconds(ti),  # the whole task instance: state, result and XCom too
        "ours_api": api_seconds(ours_requests),  # first page asked to last page answered
        "dlt_alone_api": api_seconds(alone_requests),
    }
    assert all(value > 0 for value in seconds.values()), seconds
    figures = bulk_postgres.figures(BULK_ITEMS, BULK_PAGES, seconds, load_at_start, load_at_end)
    bulk_postgres.record(figures)  # a summary line; the JSON in $SYNC_BENCH_E2E_OUT if set
