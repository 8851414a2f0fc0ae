"""A child resource (issues per repository) against the GitHub emulation, landed in DuckDB row by row:
every parent and child request through the source's one window, a deferral in the middle of a child's
pages resuming at that child page of that parent item, a repository that 404s skipped (or failing the
sync with ``on_missing_parent: fail``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.run.sync_run import Checkpoint
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.apis.github import GitHub
from tests.hook import FakeClock, Sleeps, connect, make_hook, stored, sync_once

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")

REPOS = {"octo/alpha": 5, "octo/beta": 0, "octo/gone": 2, "octo/gamma": 3}


def github(on_missing_parent: str = "skip") -> SyncConfig:
    return SyncConfig.from_dict(
        {
            "source": "github",
            "rate_limit": {"max_requests": 50, "window": "1h"},
            "load": {"destination": "duckdb"},
            "defer_after": "5s",
            "timeout": "10s",
            "resources": [
                {
                    "name": "repos",
                    "path": "/user/repos",
                    "params": {"per_page": 2},
                    "paginator": "header_link",
                    "load": {"primary_key": "id", "write_disposition": "merge"},
                },
                {
                    "name": "issues",
                    "path": "/repos/{resources.repos.full_name}/issues",
                    "params": {"per_page": 2},
                    "paginator": "header_link",
                    "include_from_parent": ["id"],
                    "on_missing_parent": on_missing_parent,
                    "load": {"write_disposition": "append"},
                },
            ],
        }
    )


def requested(api: GitHub) -> list[str]:
    return [f"{s.path}?page={s.query.get('page', '1')}" for s in api.log]


def test_issues_per_repo_land_once_each_across_a_deferral_and_a_missing_repo_is_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    config = github()
    store = InMemoryStateStore()
    with GitHub(REPOS) as api:
        api.issues.pop("octo/gone")  # listed, but its issues answer 404
        connect(monkeypatch, api.url, password=api.token, extra={"auth_type": "bearer"})
        api.throttle_at(3)  # alpha's second page: 429 with Retry-After 30, the sync defers
        api.throttle_at(11)  # gamma's second page (the second item of the parent's second page)
        clock = FakeClock()
        hook, sleeps = make_hook(clock, store), Sleeps(clock)
        checkpoint = Checkpoint(started_at=clock())
        positions = []
        for _ in range(3):
            try:
                out = sync_once(
                    hook, config, clock=clock, sleep=sleeps, checkpoint=checkpoint, resource="issues"
                )
                break
            except SyncWaitRequired:
                saved = json.dumps(checkpoint.to_dict())  # as Airflow stores it: plain JSON
                assert api.token not in saved
                positions.append(json.loads(saved)["handler_data"]["parent"])
                checkpoint = Checkpoint.from_dict(json.loads(saved))
                clock.advance(30)

    assert positions == [{"page": 1, "index": 0}, {"page": 2, "index": 1}]
    assert out.error is None, out.result
    assert out.result.items_processed == 5 + 0 + 3
    assert out.xcom is None or out.xcom.get("resource") == "issues"
    assert requested(api) == [
        "/user/repos?page=1",
        "/repos/octo/alpha/issues?page=1",
        "/repos/octo/alpha/issues?page=2",  # 429: deferred
        "/user/repos?page=1",  # the parent page in hand, read again; alpha resumes at its page 2
        "/repos/octo/alpha/issues?page=2",
        "/repos/octo/alpha/issues?page=3",
        "/repos/octo/beta/issues?page=1",
        "/user/repos?page=2",
        "/repos/octo/gone/issues?page=1",  # 404: skipped
        "/repos/octo/gamma/issues?page=1",
        "/repos/octo/gamma/issues?page=2",  # 429: deferred
        "/user/repos?page=2",  # the parent page in hand again; octo/gone (item 0) is not asked again
        "/repos/octo/gamma/issues?page=2",
    ]
    assert "octo/gone/issues answered 404; parent item skipped" in capsys.readouterr().out
    # every request took a slot of the source's one window
    assert len(stored(store, "github").window) == len(api.log)
    with duckdb.connect(str(tmp_path / "sync_data" / "github.duckdb"), read_only=True) as con:
        rows = con.sql("select repo, number, _repos_id from sync.issues order by repo, number").fetchall()
    ids = {r["full_name"]: r["id"] for r in api.repos}
    expected = sorted(
        (repo, issue["number"], ids[repo]) for repo, issues in api.issues.items() for issue in issues
    )
    assert rows == expected
    entry: dict[str, Any] = stored(store, "github").resources["issues"]
    assert entry["last_result"]["items_processed"] == 8 and entry["last_result"]["resource"] == "issues"


def test_a_missing_parent_fails_the_sync_when_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    with GitHub({"octo/gone": 1, "octo/gamma": 1}) as api:
        api.issues.pop("octo/gone")
        connect(monkeypatch, api.url, password=api.token, extra={"auth_type": "bearer"})
        clock = FakeClock()
        out = sync_once(make_hook(clock), github("fail"), clock=clock, sleep=Sleeps(clock), resource="issues")
    assert out.task_state == "failed" and out.result.error is not None
    assert "404" in (out.result.error_message or "")
    assert requested(api) == ["/user/repos?page=1", "/repos/octo/gone/issues?page=1"]
