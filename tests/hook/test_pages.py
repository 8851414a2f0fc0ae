"""``ctx.pages()`` across deferrals, several loops and ``max_pages``: what a handler is given, and when.

The API is a small path-aware loopback server (``PagedApi``): collections paged by numeric cursors
(no ``Link`` header, so two collections share cursor values) and a ``/detail`` endpoint for the
per-item requests handlers make. A deferral is resumed as the operator does it: the checkpoint goes
through JSON, the fake clock moves by the wait, and a new ``SyncRun`` starts from the checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.handlers import Page, SyncContext
from airflow_sync_provider.run.sync_run import Checkpoint
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.hook import (
    FakeClock,
    Reply,
    ScriptedServer,
    Sleeps,
    SyncOutcome,
    connect,
    fast_config,
    make_hook,
    sync_once,
)

SECOND = timedelta(seconds=1)
PAGE = 5


class PagedApi(ScriptedServer):
    """``GET /<name>?cursor=N``: ``PAGE`` items of ``collections[name]`` and ``next_cursor`` N+PAGE (or
    null); ``GET /detail?id=X``: ``{"id": X}``. ``throttle(prefix)`` answers the next request whose path
    starts with ``prefix`` 429 with ``Retry-After: 30``."""

    def __init__(self, collections: dict[str, int]) -> None:
        super().__init__([Reply()])
        self.collections = collections
        self.throttled: list[str] = []

    def throttle(self, prefix: str) -> None:
        with self._lock:
            self.throttled.append(prefix)

    def next_reply(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.log.append({"method": method, "path": path, "headers": headers})
            hit = next((p for p in self.throttled if path.startswith(p)), None)
            if hit is not None:
                self.throttled.remove(hit)
                return Reply(status=429, body=b'{"error": "slow down"}', headers={"Retry-After": "30"})
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/detail":
            return Reply(body=json.dumps({"id": query["id"]}).encode())
        name = parts.path.strip("/")
        total, start = self.collections[name], int(query.get("cursor", 0))
        items = [{"id": f"{name}-{i}"} for i in range(start, min(start + PAGE, total))]
        return Reply.page(items, str(start + PAGE) if start + PAGE < total else None)

    def paths(self, prefix: str = "/") -> list[str]:
        return [e["path"] for e in self.log if e["path"].startswith(prefix)]


@dataclass
class Env:
    api: PagedApi
    clock: FakeClock
    store: InMemoryStateStore
    hook: RateLimitedSyncHook
    sleeps: Sleeps
    deferrals: list[float] = field(default_factory=list)

    def sync_to_end(self, config: SyncConfig, handler: Callable[[SyncContext], Any]) -> SyncOutcome:
        """Sync, resuming after every deferral like the operator's ``execute_complete`` (at most 20)."""
        checkpoint = Checkpoint(started_at=self.clock())
        while len(self.deferrals) <= 20:
            try:
                return sync_once(
                    self.hook,
                    config,
                    clock=self.clock,
                    sleep=self.sleeps,
                    handler=handler,
                    checkpoint=checkpoint,
                )
            except SyncWaitRequired as waited:
                self.deferrals.append(waited.seconds)
                checkpoint = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
                self.clock.advance(waited.seconds)
        raise AssertionError(f"the sync did not finish within 20 deferrals: {self.api.paths()}")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with PagedApi({"items": 12, "one": 4, "users": 12, "orders": 7}) as api:
        connect(monkeypatch, api.url)
        clock, store = FakeClock(), InMemoryStateStore()
        yield Env(api, clock, store, make_hook(clock, store), Sleeps(clock))


def config(endpoint: str = "/items", **changes: Any) -> SyncConfig:
    """Waits above 5 s defer (the API's Retry-After is 30 s)."""
    return fast_config("items", endpoint=endpoint, defer_after=5 * SECOND, **changes)


@dataclass
class DetailHandler:
    """One ``ctx.request`` per item inside ``ctx.pages()``; ``throttle_at`` 429s that item's request once.

    ``dedupe`` keeps the ids done in ``handler_data``, so a redelivered page skips them. The handler
    returns the item count of ``ctx.checkpoint`` (finished pages), as the README recommends.
    """

    api: PagedApi
    throttle_at: str | None = None
    dedupe: bool = False
    pages: list[tuple[int, str, bool]] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)

    def __call__(self, ctx: SyncContext) -> int:
        done: list[str] = ctx.checkpoint.handler_data.setdefault("done", [])
        for page in ctx.pages():
            self.pages.append((page.number, urlsplit(page.url).query, page.redelivered))
            for item in page.items:
                if self.dedupe and item["id"] in done:
                    continue
                if item["id"] == self.throttle_at:
                    self.throttle_at = None
                    self.api.throttle("/detail")
                ctx.request("GET", "/detail", id=item["id"])
                self.processed.append(item["id"])
                done.append(item["id"])
        return ctx.checkpoint.items


ALL_ITEMS = [f"items-{i}" for i in range(12)]


def test_a_deferral_mid_page_delivers_that_page_again_and_loses_nothing(env: Env) -> None:
    handler = DetailHandler(env.api, throttle_at="items-2")
    out = env.sync_to_end(config(), handler)

    assert out.error is None and env.deferrals == [30.0]
    # page 1 again after the resume (same number and cursor, marked), then pages 2 and 3 once each
    assert handler.pages == [(1, "", False), (1, "", True), (2, "cursor=5", False), (3, "cursor=10", False)]
    assert env.api.paths("/items") == ["/items", "/items", "/items?cursor=5", "/items?cursor=10"]
    # at least once: every item reached the handler; the two before the deferral point twice
    assert set(handler.processed) == set(ALL_ITEMS)
    assert handler.processed[:2] == handler.processed[2:4] == ["items-0", "items-1"]
    assert out.result.items_processed == 12  # the redelivered page is counted once


def test_the_handler_can_skip_what_it_did_before_the_deferral(env: Env) -> None:
    handler = DetailHandler(env.api, throttle_at="items-2", dedupe=True)
    out = env.sync_to_end(config(), handler)

    assert out.error is None and handler.processed == ALL_ITEMS  # exactly once, in order
    assert env.api.paths("/detail").count("/detail?id=items-2") == 2  # the 429 and its resend


def test_a_deferral_on_the_last_page_resumes_there_and_never_rereads_finished_pages(env: Env) -> None:
    handler = DetailHandler(env.api, throttle_at="items-11")
    out = env.sync_to_end(config(), handler)

    assert out.error is None and out.result.items_processed == 12
    assert handler.pages == [
        (1, "", False),
        (2, "cursor=5", False),
        (3, "cursor=10", False),
        (3, "cursor=10", True),
    ]
    assert env.api.paths("/items") == ["/items", "/items?cursor=5", "/items?cursor=10", "/items?cursor=10"]


def test_a_one_page_source_finishes_under_repeated_deferrals(env: Env) -> None:
    """2 requests per minute, 5 per pass over the one page: the window defers the sync again and again;
    each resume delivers the page again and the handler skips the items it has done."""
    handler = DetailHandler(env.api, dedupe=True)
    slow = config("/one", rate_limit=RateLimitConfig(max_requests=2, window=60 * SECOND))
    out = env.sync_to_end(slow, handler)

    assert out.error is None and out.result.items_processed == 4
    assert handler.processed == ["one-0", "one-1", "one-2", "one-3"]
    assert len(env.deferrals) == 3
    assert env.api.paths("/one") == ["/one"] * 4  # the page once per pass, then the loop is finished
    assert handler.pages == [(1, "", False)] + [(1, "", True)] * 3


def test_a_finished_loop_yields_nothing_after_a_resume(env: Env) -> None:
    """Pages read, then a request after the loop defers: the resume re-runs the handler, not the pages."""
    seen: list[list[int]] = []

    def handler(ctx: SyncContext) -> int:
        seen.append([page.number for page in ctx.pages()])
        if not ctx.checkpoint.handler_data.get("throttled"):
            ctx.checkpoint.handler_data["throttled"] = True
            env.api.throttle("/detail")
        ctx.request("GET", "/detail", id="summary")
        return ctx.checkpoint.items

    out = env.sync_to_end(config(), handler)

    assert out.error is None and out.result.items_processed == 12
    assert seen == [[1, 2, 3], []]
    assert env.api.paths("/items") == ["/items", "/items?cursor=5", "/items?cursor=10"]
    assert env.api.paths("/detail") == ["/detail?id=summary"] * 2


# -- several loops -----------------------------------------------------------------------------------


def test_two_loops_keep_their_own_cursors_and_a_resume_lands_in_the_second(env: Env) -> None:
    """/users then /orders, both with cursors 5, 10: no false "pagination loop"; a 429 on /orders page 2
    resumes at /orders page 2 and /users is not read again."""
    pages: list[tuple[str, int, bool]] = []

    def handler(ctx: SyncContext) -> int:
        for name in ("users", "orders"):
            for page in ctx.pages(f"/{name}"):
                pages.append((name, page.number, page.redelivered))
                if (name, page.number) == ("orders", 1) and not ctx.checkpoint.handler_data:
                    ctx.checkpoint.handler_data["throttled"] = True
                    env.api.throttle("/orders?cursor=5")
        return ctx.checkpoint.items

    out = env.sync_to_end(config(), handler)

    assert out.error is None and out.result.items_processed == 12 + 7
    assert env.deferrals == [30.0]
    assert env.api.paths() == [
        "/users",
        "/users?cursor=5",
        "/users?cursor=10",
        "/orders",
        "/orders?cursor=5",  # 429: defer
        "/orders?cursor=5",
    ]
    users = [("users", n, False) for n in (1, 2, 3)]
    assert pages == [*users, ("orders", 1, False), ("orders", 2, False)]


def test_the_same_path_twice_is_two_loops(env: Env) -> None:
    def handler(ctx: SyncContext) -> int:
        first = [page.number for page in ctx.pages("/orders")]
        second = [page.number for page in ctx.pages("/orders")]
        assert first == second == [1, 2]
        return ctx.checkpoint.items

    out = env.sync_to_end(config(), handler)
    assert out.error is None and out.result.items_processed == 14
    assert env.api.paths() == ["/orders", "/orders?cursor=5"] * 2


def test_a_cursor_repeated_within_one_loop_is_still_a_pagination_loop(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = [Reply.page([{"id": 1}], "a"), Reply.page([{"id": 2}], "b"), Reply.page([{"id": 3}], "a")]
    with ScriptedServer(replies) as scripted:
        connect(monkeypatch, scripted.url)
        hook = make_hook(env.clock)
        numbers: list[int] = []

        def handler(ctx: SyncContext) -> int:
            numbers.extend(page.number for page in ctx.pages())
            return ctx.checkpoint.items

        out = sync_once(hook, config(), clock=env.clock, sleep=env.sleeps, handler=handler)
    assert out.error is not None and out.error.kind is SyncErrorKind.INVALID_RESPONSE
    assert "pagination loop: next page 'a' was already read" in str(out.error)
    assert numbers == [1, 2] and len(scripted.log) == 3


# -- max_pages -------------------------------------------------------------------------------------


def test_reaching_max_pages_is_a_truncated_success(
    env: Env, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.WARNING):
        out = env.sync_to_end(config(max_pages=2), DetailHandler(env.api))
    logs = caplog.text + capsys.readouterr().out  # the operator's task logger writes to stdout here

    assert out.error is None and out.result.success and out.result.truncated
    assert out.result.items_processed == 10
    assert env.api.paths("/items") == ["/items", "/items?cursor=5"]  # page 3 is never requested
    assert out.result.summary().endswith("(truncated at max_pages)")
    assert "items: stopped at max_pages=2 pages; the source has more" in logs
    assert out.guard.state.last_result is not None and out.guard.state.last_result["truncated"] is True


def test_exactly_max_pages_pages_is_not_truncated(env: Env) -> None:
    out = env.sync_to_end(config(max_pages=3), DetailHandler(env.api))
    assert out.error is None and not out.result.truncated and out.result.items_processed == 12


def test_a_redelivered_page_counts_once_towards_max_pages(env: Env) -> None:
    handler = DetailHandler(env.api, throttle_at="items-7")  # on page 2
    out = env.sync_to_end(config(max_pages=2), handler)

    assert out.error is None and out.result.truncated and out.result.items_processed == 10
    assert [p[:2] for p in handler.pages] == [(1, ""), (2, "cursor=5"), (2, "cursor=5")]


def test_max_pages_counts_the_pages_of_all_loops(env: Env) -> None:
    def handler(ctx: SyncContext) -> int:
        return sum(len(p.items) for p in ctx.pages("/orders")) + sum(
            len(p.items) for p in ctx.pages("/users")
        )

    out = env.sync_to_end(config(max_pages=3), handler)
    assert out.result.truncated and out.result.items_processed == 7 + 5
    assert env.api.paths() == ["/orders", "/orders?cursor=5", "/users"]


def test_page_params_go_on_the_first_page_and_stay_on_cursor_pages(env: Env) -> None:
    def handler(ctx: SyncContext) -> int:
        pages: list[Page] = list(ctx.pages("/orders", limit=5, status="open"))
        return len(pages)

    env.sync_to_end(config(), handler)
    assert env.api.paths() == ["/orders?limit=5&status=open", "/orders?limit=5&status=open&cursor=5"]
