"""Running a recipe of docs/recipes.md as its task would, for tests/load/test_recipes*.py.

``Runner`` syncs one recipe's source (or one of its resources) through the real operator against an
emulated API, resuming after each deferral from a JSON round-tripped checkpoint, and reads back the
DuckDB table it landed. ``assert_resumed_at_the_throttled_request`` checks a resume from the API's
request log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.run.sync_run import Checkpoint
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.apis import EmulatedApi, Seen
from tests.hook import FakeClock, Sleeps, SyncOutcome, sync_once
from tests.load.recipes import Recipe, connection_env, local


@dataclass
class Synced:
    outcome: SyncOutcome
    deferrals: list[float]


class Runner:
    """Syncs one recipe against ``api`` until done, resuming after each deferral from a JSON
    round-tripped checkpoint; keeps its state store and clock across syncs (a bookmark persists, and
    the resources of one source share its window as their tasks do)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rec: Recipe, api: EmulatedApi, **secrets: str):
        self.rec, self.clock, self.store = rec, FakeClock(), InMemoryStateStore()
        conn = local(rec.connection, api.url, **secrets)
        for name, value in connection_env(rec.config.conn_id, conn).items():
            monkeypatch.setenv(name, value)

    def sync(self, resource: str | None = None) -> Synced:
        """One task's sync: the source's, or ``resource``'s."""
        hook = RateLimitedSyncHook(conn_id=self.rec.config.conn_id, store=self.store, clock=self.clock)
        sleeps, deferrals = Sleeps(self.clock), []
        checkpoint = Checkpoint(started_at=self.clock())
        while len(deferrals) < 5:
            try:
                out = sync_once(
                    hook,
                    self.rec.config,
                    clock=self.clock,
                    sleep=sleeps,
                    checkpoint=checkpoint,
                    resource=resource,
                )
                return Synced(out, deferrals)
            except SyncWaitRequired as waited:
                deferrals.append(waited.seconds)
                checkpoint = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
                self.clock.advance(waited.seconds)
        raise AssertionError("did not finish within 5 deferrals")

    def rows(self, columns: str, resource: str | None = None, order: str = "id") -> list[tuple[Any, ...]]:
        """``columns`` of the table the source (or ``resource``) lands in, by ``order``."""
        config = self.rec.config if resource is None else self.rec.config.for_resource(resource)
        load = config.load
        assert load is not None
        path = Path(load.path.replace("{source}", config.source))
        path = path if path.is_absolute() else Path(os.environ["AIRFLOW_HOME"]) / path
        duckdb = pytest.importorskip("duckdb")
        with duckdb.connect(str(path), read_only=True) as con:
            return con.sql(f"select {columns} from {load.dataset}.{load.table} order by {order}").fetchall()


def same_request(a: Seen, b: Seen) -> bool:
    return (a.method, a.path, a.query, a.body) == (b.method, b.path, b.query, b.body)


def assert_resumed_at_the_throttled_request(api: EmulatedApi, throttled: int) -> None:
    """Request ``throttled`` (1-based) was answered 429; the next one is the same request, and no
    other request repeats (nothing re-read from page 1)."""
    log = api.log
    assert same_request(log[throttled - 1], log[throttled])
    others = [s for i, s in enumerate(log) if i != throttled]
    for i, seen in enumerate(others):
        assert not any(same_request(seen, other) for other in others[i + 1 :]), seen
