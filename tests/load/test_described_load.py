"""The default handler lands a source described in config only (paginator, data_selector) in DuckDB,
across a deferral in the middle of the pagination, row by row as the API has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.run.sync_run import Checkpoint
from tests.apis import Jira
from tests.hook import FakeClock, Sleeps, connect, make_hook, sync_once

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")


def test_jira_issues_land_once_each_across_a_deferral(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    config = SyncConfig.from_dict(
        {
            "source": "jira_issues",
            "endpoint": "/rest/api/3/search",
            "params": {"jql": "project = PROJ ORDER BY id"},
            "paginator": {
                "type": "offset",
                "limit": 4,
                "offset_param": "startAt",
                "limit_param": "maxResults",
            },
            "data_selector": "issues",
            "load": {"destination": "duckdb", "primary_key": "id", "write_disposition": "merge"},
            "defer_after": "5s",
            "timeout": "10s",
        }
    )
    with Jira(10) as api:
        user, token = api.credentials
        connect(monkeypatch, api.url, login=user, password=token)
        api.throttle_at(2)
        clock = FakeClock()
        hook, sleeps = make_hook(clock), Sleeps(clock)
        checkpoint = Checkpoint(started_at=clock())
        with pytest.raises(SyncWaitRequired):
            sync_once(hook, config, clock=clock, sleep=sleeps, checkpoint=checkpoint)
        checkpoint = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
        clock.advance(30)
        out = sync_once(hook, config, clock=clock, sleep=sleeps, checkpoint=checkpoint)

    assert out.error is None and out.result.items_processed == 10
    assert [s.query["startAt"] for s in api.log] == ["0", "4", "4", "8"]
    with duckdb.connect(str(tmp_path / "sync_data" / "jira_issues.duckdb"), read_only=True) as con:
        rows = con.sql("select id, key from sync.jira_issues order by id").fetchall()
    assert rows == [(issue["id"], issue["key"]) for issue in api.issues]
