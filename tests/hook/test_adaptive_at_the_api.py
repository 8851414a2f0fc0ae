"""Hidden limits, learned adaptively, against a real local API (issue 19, item 4).

``bench.hidden_limit.HiddenLimitApi`` answers a bare 429 (no quota headers) past a hidden moving
window of 8 requests per 10 s, on the tests' fake clock (nothing sleeps). The source is configured
at 20 per 10 s. Two hooks sharing one store stand for two workers of the source.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore
from bench.hidden_limit import HiddenLimitApi
from tests.hook import FakeClock, Sleeps, connect, fast_config, make_hook, stored

HIDDEN, WINDOW, CONFIGURED, PAGES = 8, 10.0, 20, 40


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[HiddenLimitApi]:
    with HiddenLimitApi(lambda _: HIDDEN, window=WINDOW, clock=clock, page_size=1, pages=PAGES) as server:
        connect(monkeypatch, server.url)
        yield server


def config(*, adaptive: bool) -> SyncConfig:
    limit = RateLimitConfig(
        max_requests=CONFIGURED, window=timedelta(seconds=WINDOW), adaptive=adaptive, min_requests=2
    )
    return fast_config(endpoint="/items", max_retries=10, rate_limit=limit)


def sync(
    store: InMemoryStateStore, cfg: SyncConfig, clock: FakeClock, api: HiddenLimitApi
) -> tuple[int, list[str]]:
    """One sync by a new hook (a worker) on ``store``: its 429 count and its log lines."""
    log = logging.getLogger(f"tests.hook.adaptive.{id(store)}")
    lines = Lines()
    log.addHandler(lines)
    try:
        hook = make_hook(clock, store)
        guard = hook.open_guard(cfg, log=log)
        run = SyncRun(cfg, hook, guard, clock=clock, sleep=Sleeps(clock), log=log)
        before = len(api.log)
        items = default_handler(SyncContext(run, {}))
        guard.finish({"items": items})
    finally:
        log.removeHandler(lines)
    assert items == PAGES
    return [entry[1] for entry in api.log[before:]].count(429), lines.lines


def effective_seen(lines: list[str]) -> list[int]:
    """The effective limit each attempt line showed (``effective 5/20``)."""
    return [int(m.group(1)) for line in lines if (m := re.search(rf"effective (\d+)/{CONFIGURED}\b", line))]


def test_the_effective_limit_drops_is_shared_and_recovers(clock: FakeClock, api: HiddenLimitApi) -> None:
    store, cfg = InMemoryStateStore(), config(adaptive=True)
    refused, lines = sync(store, cfg, clock, api)
    assert refused >= 1
    seen = effective_seen(lines)
    low = min(seen)
    assert seen[0] == CONFIGURED and low < HIDDEN  # lowered below the hidden limit by a 429
    assert max(seen[seen.index(low) :]) > low  # and raised again by successes
    lowered = [line for line in lines if "lowered" in line]
    assert lowered and all(
        re.fullmatch(
            r"rate_limit of sponsored lowered: effective \d+ -> \d+ of 20 after a 429 without a quota signal",
            line,
        )
        for line in lowered
    )

    # another worker: a new hook on the same store obeys the stored limit from its first admission
    assert stored(store, cfg.source).adaptive is not None
    second = make_hook(clock, store).open_guard(cfg, log=logging.getLogger("tests.hook"))
    shared = second.adaptive.limit(second.state, clock())
    assert shared < CONFIGURED
    _, lines = sync(store, cfg, clock, api)
    assert effective_seen(lines)[0] < CONFIGURED  # it started from the shared limit, not from 20


def test_adaptive_refuses_far_fewer_than_the_fixed_config(clock: FakeClock, api: HiddenLimitApi) -> None:
    fixed_store, adaptive_store = InMemoryStateStore(), InMemoryStateStore()
    fixed = [sync(fixed_store, config(adaptive=False), clock, api)[0] for _ in range(2)]
    requests_fixed = len(api.log)
    learned = [sync(adaptive_store, config(adaptive=True), clock, api)[0] for _ in range(2)]
    requests_learned = len(api.log) - requests_fixed
    ratio_fixed = sum(fixed) / requests_fixed
    ratio_learned = sum(learned) / requests_learned
    assert ratio_learned < ratio_fixed / 2


def test_without_adaptive_nothing_changes(clock: FakeClock, api: HiddenLimitApi) -> None:
    """The default (off): the 429s neither lower the limit nor show nor add a key to the state."""
    store, cfg = InMemoryStateStore(), config(adaptive=False)
    assert SyncConfig(source="x").rate_limit.adaptive is False
    refused, lines = sync(store, cfg, clock, api)
    assert refused > 0
    assert not effective_seen(lines) and not any("lowered" in line for line in lines)
    assert '"adaptive"' not in store.raw["sync_state_sponsored"]
    first_burst = [status for _, status in api.answers("items")[: HIDDEN + 1]]
    assert first_burst == [200] * HIDDEN + [429]  # the configured 20 was admitted past the hidden 8
