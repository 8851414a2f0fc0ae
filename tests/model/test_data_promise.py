"""Issue 17's proof for landed data: random syncs, pages, deferrals, crashes and locks keep the data promise.

A hypothesis state machine drives the real operator (``tests.model.driver``), the default handler and
the dlt loader into a DuckDB file in a temporary directory, against ``CatalogApi``: items
``{"id", "v"}`` whose ``v`` (the incremental cursor) grows on every change. Per example the source
lands with one disposition (append / merge / replace); the incremental ones read with the order
unknown (offset pages in id order, so a page may hold newer items than the next) or declared ``asc``
(keyset pages in ``v`` order). Rules: syncs with and without ``max_pages``, scripted faults (a 429 that
defers, a 404 that aborts), resumes, deferral timeouts, a crash between the load's commit and the
bookmark write (or mid-sync), a locked destination, items changed and added between and during syncs
(the initial items are touched too, so a page may hold newer items than the next).

The promise (checked after every rule):

- ``skipped``: no item version the API had when a sync started is at or below the stored bookmark
  without being in the table (at that version or a later one), unless the item has changed since to a
  version above the bookmark (still to be fetched);
- ``snapshot``: a ``replace`` table is always a complete snapshot (every id the API had at some
  moment, once: ids are only added, so the moment a run started or resumed), and a sync that defers,
  fails or is truncated leaves it exactly as it was;
- ``once``: under ``merge`` every item is in the table once;
- ``loaded``: under ``append`` a finished sync's ``items_loaded`` (a timed-out deferral's too) is the
  number of rows it added;
- ``bookmark``: the stored bookmark keeps the cursor's type (an int).

Knobs: ``MODEL_DISPOSITIONS=a,b`` (default all three); ``MODEL_EXAMPLES`` / ``MODEL_STEPS`` as in
``test_sync_promise`` (each sync loads through dlt,
so the counts are smaller; under ``CI=true`` derandomized unless ``MODEL_RANDOM=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import duckdb
import pytest
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowFailException
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from airflow_sync_provider.config import BackoffConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.config.load import IncrementalConfig, LoadConfig
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from tests.model.driver import CrashPlan, Driver, Sync, make_handler
from tests.model.scripted_api import HOST, ApiAdapter, FakeClock, Reply, ScriptedApi, Wire

pytest.importorskip("dlt")

SOURCE = "shop"
CONN_ID = "data_model_api"
T0 = 1_800_000_000.0
DISPOSITIONS = tuple(os.environ.get("MODEL_DISPOSITIONS", "append,merge,replace").split(","))


class CatalogApi(ScriptedApi):
    """``/items``: every item ``{"id", "v"}`` with ``v > since``, ``page_size`` per page.

    Order unknown: offset pages in id order (``?page=N``, ``Link: rel="next"``); ``asc``: keyset pages
    in ``v`` order (``next_cursor`` = the page's last ``v``, sent back as ``?cursor=``).
    """

    def __init__(self, clock: FakeClock, *, page_size: int, asc: bool) -> None:
        super().__init__(clock, pages=1, page_size=page_size, cursor=asc)
        self.asc = asc
        self.versions: dict[str, int] = {}
        self.stamp = 0

    def add(self, n: int) -> None:
        for _ in range(n):
            self.stamp += 1
            self.versions[f"item-{len(self.versions):03d}"] = self.stamp

    def touch(self, indices: list[int]) -> None:
        ids = sorted(self.versions)
        for index in indices:
            self.stamp += 1
            self.versions[ids[index % len(ids)]] = self.stamp

    def _with_page(self, wire: Wire, path: str, query: str) -> Wire:
        q = dict(parse_qsl(query))
        page = int(q.get("cursor" if self.asc else "page", "0" if self.asc else "1"))
        return Wire(**{**wire.__dict__, "page": (path.strip("/"), page)})

    def _resource(self, wire: Wire) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(wire.path)
        if parts.path.strip("/") != "items":
            return 404, {}, b"no such resource"
        q = dict(parse_qsl(parts.query))
        since = int(q["since"]) if "since" in q else None
        rows: list[dict[str, Any]] = [
            {"id": i, "v": v} for i, v in sorted(self.versions.items()) if since is None or v > since
        ]
        headers = {"Content-Type": "application/json"}
        body: dict[str, Any]
        if self.asc:
            after = int(q.get("cursor", "0"))
            rows = sorted((r for r in rows if int(r["v"]) > after), key=lambda r: int(r["v"]))
            body = {"items": rows[: self.page_size]}
            if len(rows) > self.page_size:
                body["next_cursor"] = str(rows[self.page_size - 1]["v"])
        else:
            page = int(q.get("page", "1"))
            body = {"items": rows[(page - 1) * self.page_size : page * self.page_size]}
            if len(rows) > page * self.page_size:
                following = {k: v for k, v in q.items() if k != "page"} | {"page": str(page + 1)}
                headers["Link"] = f'</items?{urlencode(following)}>; rel="next"'
        return 200, headers, json.dumps(body).encode()


def config_for(disposition: str, asc: bool, database: Path) -> SyncConfig:
    incremental = None
    if disposition != "replace":
        incremental = IncrementalConfig(cursor_field="v", param="since", order="asc" if asc else None)
    return SyncConfig(
        source=SOURCE,
        endpoint="/items",
        conn_id=CONN_ID,
        schedule=None,
        rate_limit=RateLimitConfig(max_requests=1000, window=timedelta(seconds=60)),
        backoff=BackoffConfig(initial_delay=timedelta(seconds=1), jitter_factor=0),
        timeout=timedelta(seconds=2),
        max_retries=1,
        max_wait=timedelta(minutes=10),
        defer_after=timedelta(seconds=5),
        max_sync_duration=timedelta(hours=2),
        load=LoadConfig(
            path=str(database),
            primary_key=("id",) if disposition in ("merge", "replace") else (),  # replace: newest wins
            write_disposition=disposition,  # type: ignore[arg-type]
        ),
        incremental=incremental,
    )


class _TimedOutTI:
    """A task instance whose XComs are the sync's deferral record (what Airflow gives a timed-out task)."""

    task_id = "s"

    def __init__(self, sync: Sync, record: Any) -> None:
        self.sync, self.record = sync, record

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.record

    def xcom_push(self, key: str, value: Any) -> None:
        self.sync.pushed = value


@dataclass(frozen=True)
class World:
    """What happens before a run: items change and are added at the source, the destination's file is
    held by another connection (or not), time passes, and the run's ``n``-th request gets a fault:
    429 with Retry-After 30 s (the sync defers), 404 (it aborts) or 503 (retried)."""

    changed: tuple[int, ...] = ()
    added: int = 0
    locked: bool = False
    seconds: float = 0.0
    fault: tuple[str, int] | None = None


worlds = st.builds(
    World,
    changed=st.lists(st.integers(0, 20), max_size=2).map(tuple),
    added=st.sampled_from([0, 0, 1, 2]),
    locked=st.sampled_from([False, False, False, True]),
    seconds=st.sampled_from([0.0, 120.0]),
    fault=st.one_of(st.none(), st.tuples(st.sampled_from(["429", "429", "404", "503"]), st.integers(1, 3))),
)


class DataPromise(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "http", "host": HOST, "schema": "http"}
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="data_promise_"))
        self.database = self.tmp / "shop.duckdb"
        self.clock = FakeClock(T0)
        self.problems: list[str] = []
        self.syncs: list[Sync] = []
        self.promised: set[tuple[str, int]] = set()
        """Every item version the API had when a sync started."""
        self.snapshots: list[frozenset[str]] = []
        """The API's id set before each run (replace: what a complete table may hold)."""
        self.rows_at_start: dict[int, int] = {}
        self.locked = False

    @initialize(
        disposition=st.sampled_from(DISPOSITIONS),
        asc=st.booleans(),
        items=st.integers(1, 6),
        page_size=st.integers(1, 3),
        touched=st.lists(st.integers(0, 5), max_size=3),
    )
    def setup(self, disposition: str, asc: bool, items: int, page_size: int, touched: list[int]) -> None:
        self.disposition = disposition
        self.api = CatalogApi(self.clock, page_size=page_size, asc=asc)
        self.api.add(items)
        self.api.touch(touched)  # so that a page may hold newer items than the next
        self.config = config_for(disposition, asc, self.database)
        self.store = InMemoryStateStore()
        hook = RateLimitedSyncHook(CONN_ID, store=self.store, clock=self.clock)
        hook.session.mount("http://", ApiAdapter(self.api))
        self.driver = Driver(hook, self.api, self.clock)

    def teardown(self) -> None:
        os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what the destination and the state hold ------------------------------------------------------

    def rows(self) -> list[tuple[str, int]]:
        if not self.database.exists():
            return []
        with duckdb.connect(str(self.database), read_only=True) as con:
            tables = con.sql(
                "select 1 from information_schema.tables where table_schema = 'sync' and table_name = 'shop'"
            ).fetchall()
            if not tables:
                return []
            return [(str(i), int(v)) for i, v in con.sql("select id, v from sync.shop").fetchall()]

    def bookmark(self) -> Any:
        return SourceState.from_json(self.store.raw.get(variable_key(SOURCE)), SOURCE).bookmark

    @property
    def deferred(self) -> Sync | None:
        return next((s for s in self.syncs if s.status == "deferred"), None)

    # -- running syncs ---------------------------------------------------------------------------------

    def _start(self, max_pages: int | None) -> Sync:
        params = {"max_pages": max_pages} if max_pages is not None else {}
        sync = Sync(len(self.syncs), "data", "default", self.config, params)
        self.syncs.append(sync)
        self.promised |= set(self.api.versions.items())
        self.snapshots.append(frozenset(self.api.versions))
        self.rows_at_start[sync.id] = len(self.rows())
        return sync

    def _run(self, sync: Sync, crash: CrashPlan | None) -> None:
        before = sorted(self.rows())
        if self.locked and self.database.exists():  # another holder of the file: the loads cannot open it
            with duckdb.connect(str(self.database), read_only=True):
                self.driver.run(sync, crash)
        else:
            self.driver.run(sync, crash)
        self._after(sync, before)

    def _after(self, sync: Sync, before: list[tuple[str, int]]) -> None:
        result = sync.result if sync.status == "done" else None
        published = result is not None and result.get("success") and not result.get("truncated")
        if self.disposition == "replace" and sync.status in ("deferred", "done") and not published:
            after = sorted(self.rows())
            if after != before:
                self.problems.append(
                    f"[snapshot] sync {sync.id} ended {sync.status} ({result and result.get('error')}, "
                    f"truncated={result and result.get('truncated')}) but the table changed: "
                    f"{before} -> {after}"
                )
        if self.disposition == "append" and result is not None and "items_loaded" in result:
            added = len(self.rows()) - self.rows_at_start[sync.id]
            if result["items_loaded"] != added:
                self.problems.append(
                    f"[loaded] sync {sync.id} ({result.get('error')}) says items_loaded="
                    f"{result['items_loaded']} but added {added} rows"
                )

    # -- rules -----------------------------------------------------------------------------------------

    def _fault(self, fault: tuple[str, int] | None) -> None:
        """The ``n``-th next request gets ``kind``: 429 + Retry-After 30 s defers, 404 aborts, 503 retries."""
        if fault is not None:
            kind, n = fault
            self.api.script.extend([Reply("ok")] * (n - 1))
            self.api.script.append(Reply(kind, retry_after=30 if kind == "429" else None))

    def _world(self, world: World) -> None:
        """What happens at the source and the destination before a run."""
        self.api.touch(list(world.changed))
        self.api.add(world.added)
        self.snapshots.append(frozenset(self.api.versions))
        self.locked = world.locked
        self.clock.advance(world.seconds)
        self.api.script.clear()
        if world.fault is not None:
            kind, n = world.fault
            self.api.script.extend([Reply("ok")] * (n - 1))
            self.api.script.append(Reply(kind, retry_after=30 if kind == "429" else None))

    @precondition(lambda self: self.deferred is None)
    @rule(
        world=worlds,
        max_pages=st.one_of(st.none(), st.integers(1, 2)),
        crash=st.one_of(
            st.none(),
            st.none(),
            st.just(CrashPlan("finish")),
            st.builds(CrashPlan, at=st.just("after_wire"), n=st.integers(1, 3)),
        ),
    )
    def sync(self, world: World, max_pages: int | None, crash: CrashPlan | None) -> None:
        """A scheduled or manual run (``max_pages``: "this run only"); ``finish``: the worker dies after
        the load committed, before the bookmark write."""
        self._world(world)
        self._run(self._start(max_pages), crash)

    @precondition(lambda self: self.deferred is not None)
    @rule(world=worlds, crash=st.one_of(st.none(), st.none(), st.just(CrashPlan("finish"))))
    def resume(self, world: World, crash: CrashPlan | None) -> None:
        """The trigger fires; items may have changed during the wait."""
        sync = self.deferred
        assert sync is not None and sync.resume_at is not None
        self._world(world)
        self.clock.now = max(self.clock.now, sync.resume_at)
        self._run(sync, crash)

    @precondition(lambda self: self.deferred is not None)
    @rule()
    def time_out(self) -> None:
        """No triggerer resumed the deferred sync in time: Airflow runs it with ``__fail__``."""
        sync = self.deferred
        assert sync is not None and sync.resume_at is not None
        record = sync.pushed
        self.clock.now = max(self.clock.now, sync.resume_at) + 600
        before = sorted(self.rows())
        handler = make_handler(sync)
        op = RateLimitedSyncOperator(source=SOURCE, config=self.config, handler=handler, task_id="s")
        op.__dict__["hook"] = self.driver.hook
        op._clock = self.clock
        context = {"params": dict(sync.params), "ti": _TimedOutTI(sync, record)}
        with pytest.raises(AirflowFailException):
            op.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, context)
        sync.result, sync.status = sync.pushed, "done"
        self._after(sync, before)

    # -- the promise -----------------------------------------------------------------------------------

    @invariant()
    def data_promise_holds(self) -> None:
        if not hasattr(self, "api"):
            return
        rows = self.rows()
        ids = [i for i, _ in rows]
        mark = self.bookmark()
        if mark is not None and type(mark) is not int:
            self.problems.append(f"[bookmark] stored bookmark {mark!r} is not an int")
        if self.disposition != "replace" and isinstance(mark, int):
            newest: dict[str, int] = {}
            for i, v in rows:
                newest[i] = max(v, newest.get(i, 0))
            # a version below the bookmark must be in the table, unless the item changed since to a
            # version above it (that one is still to be fetched)
            skipped = sorted(
                (i, v)
                for i, v in self.promised
                if v <= mark and newest.get(i, -1) < v and self.api.versions[i] <= mark
            )
            if skipped:
                self.problems.append(f"[skipped] bookmark {mark} is past {skipped[:4]} (not in the table)")
        if self.disposition == "merge" and len(ids) != len(set(ids)):
            self.problems.append(f"[once] an item is in the merge table twice: {sorted(ids)}")
        complete = len(ids) == len(set(ids)) and frozenset(ids) in self.snapshots
        if self.disposition == "replace" and ids and not complete:
            self.problems.append(f"[snapshot] the replace table is no complete snapshot: {sorted(ids)}")
        if self.problems:
            raise AssertionError("\n".join(self.problems[:5]))


def _profile() -> settings:
    ci = os.environ.get("CI") == "true"
    return settings(
        max_examples=int(os.environ.get("MODEL_EXAMPLES", 8 if ci else 4)),
        stateful_step_count=int(os.environ.get("MODEL_STEPS", 8 if ci else 6)),
        deadline=None,
        derandomize=ci and os.environ.get("MODEL_RANDOM") != "1",
        database=None,
        phases=[p for p in Phase if p is not Phase.shrink or os.environ.get("MODEL_SHRINK") == "1"],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


TestDataPromise = DataPromise.TestCase
TestDataPromise.settings = _profile()
