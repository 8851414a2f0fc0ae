"""``SyncRun`` + ``default_handler`` against the demo API: slots, waits, retries, breaker, state I/O, resume.

Every wait goes to a ``Sleeps`` recorder (exact values, no real sleeping); the clock is a ``FakeClock``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

import pytest

from airflow_sync_provider.config import BackoffConfig, CircuitBreakerConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.policy.backoff import retry_delay
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.sync_run import Checkpoint, SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.hook import (
    T0,
    FakeClock,
    Sleeps,
    SyncOutcome,
    connect,
    fast_config,
    http_date,
    make_hook,
    settled_requests,
    stored,
    sync_once,
)

SECOND = timedelta(seconds=1)
AIRDROPS_PAGES = ["/airdrops", "/airdrops?cursor=50&limit=50", "/airdrops?cursor=100&limit=50"]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@dataclass
class Env:
    demo: DemoServer
    clock: FakeClock
    store: InMemoryStateStore
    hook: RateLimitedSyncHook
    sleeps: Sleeps

    def sync(self, config: SyncConfig, **kwargs: Any) -> SyncOutcome:
        return sync_once(self.hook, config, clock=self.clock, sleep=self.sleeps, **kwargs)

    def paths(self, source: str) -> list[str]:
        return [r["path"] for r in self.demo.requests(source)]

    def statuses(self, source: str) -> list[int | None]:
        return [r["status"] for r in settled_requests(self.demo, source)]

    def seed(self, source: str, **changes: Any) -> None:
        self.store.save(SourceState(source, **changes))
        self.store.writes = 0

    def spy_sends(self, monkeypatch: pytest.MonkeyPatch, before: Any = None) -> list[str]:
        """Record each URL sent; ``before(n)`` runs just before send number n (1-based)."""
        sent: list[str] = []
        original = self.hook.send

        def send(config: SyncConfig, method: str, url: str, params: Any = None) -> Any:
            sent.append(url)
            if before is not None:
                before(len(sent))
            return original(config, method, url, params)

        monkeypatch.setattr(self.hook, "send", send)
        return sent


@pytest.fixture
def env(server: DemoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    server.clear_faults()
    server.clear_requests()
    connect(monkeypatch, server.url)
    clock, store = FakeClock(), InMemoryStateStore()
    yield Env(server, clock, store, make_hook(clock, store), Sleeps(clock))
    server.clear_faults()


def expected_backoff(config: SyncConfig, retries: int, seed: int) -> list[float]:
    """The waits ``SyncRun`` must sleep for ``retries`` retries with ``random.Random(seed)``."""
    b, rng = config.backoff, random.Random(seed)
    waits: list[float] = []
    for n in range(retries):
        waits.append(
            retry_delay(
                n,
                strategy=b.strategy,
                initial=b.initial_delay / SECOND,
                multiplier=b.multiplier,
                cap=b.max_delay / SECOND,
                jitter_factor=b.jitter_factor,
                rng=rng,
                previous=waits[-1] if waits else None,
            )
        )
    return waits


# -- window ----------------------------------------------------------------------------------------


def test_every_request_takes_a_persisted_slot_before_it_is_sent(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.demo.set_fault("error", source="airdrops", count=2)
    slots_at_send: list[tuple[int, float]] = []

    def check_slot(n: int) -> None:
        window = stored(env.store, "airdrops").window
        slots_at_send.append((len(window), window[-1]))

    env.spy_sends(monkeypatch, before=check_slot)
    out = env.sync(fast_config("airdrops"))

    assert out.error is None and out.result.items_processed == 120
    assert env.sleeps == [1.0, 2.0]
    # sends: fail, retry fail, retry ok (page 1), page 2, page 3; slot n is written before send n (with
    # the slots of a lease, hooks.lease, possibly more), the newest stamped when it was taken
    assert [count >= n for n, (count, _) in enumerate(slots_at_send, 1)] == [True] * 5
    assert [newest for _, newest in slots_at_send] == [T0, T0 + 1, T0 + 3, T0 + 3, T0 + 3]
    assert env.statuses("airdrops") == [500, 500, 200, 200, 200]
    assert stored(env.store, "airdrops").window == (T0, T0 + 1, T0 + 3, T0 + 3, T0 + 3)
    assert out.result.retry_count == 2


def window_full(env: Env, source: str, stamps: tuple[float, ...]) -> None:
    env.seed(source, window=stamps)


def test_full_window_within_max_wait_sleeps_exactly_until_the_oldest_slot_frees(env: Env) -> None:
    window_full(env, "sponsored", (T0 - 50, T0 - 10))
    config = fast_config(
        rate_limit=RateLimitConfig(max_requests=2, window=60 * SECOND), defer_after=30 * SECOND
    )
    out = env.sync(config)
    assert out.error is None
    assert env.sleeps == [11.0]  # a slot is held window + safety margin (1 s by default) after its response
    assert env.paths("sponsored") == ["/sponsored"]
    assert stored(env.store, "sponsored").window == (T0 - 10, T0 + 11)


def test_full_window_beyond_defer_after_asks_to_defer_for_exactly_the_wait(env: Env) -> None:
    window_full(env, "sponsored", (T0 - 50, T0 - 10))
    config = fast_config(
        rate_limit=RateLimitConfig(max_requests=2, window=60 * SECOND), defer_after=5 * SECOND
    )
    checkpoint = Checkpoint(started_at=T0)
    with pytest.raises(SyncWaitRequired) as waited:
        env.sync(config, checkpoint=checkpoint)
    assert waited.value.seconds == 11.0  # window + safety margin
    assert "rate limit window full" in waited.value.reason
    assert env.sleeps == []
    assert env.demo.requests() == []
    assert checkpoint.requests_sent == 0 and checkpoint.deferrals == 1


def test_full_window_beyond_max_wait_ends_with_rate_limit_exceeded_without_sending(env: Env) -> None:
    window_full(env, "sponsored", (T0 - 10, T0 - 5))
    config = fast_config(rate_limit=RateLimitConfig(max_requests=2, window=timedelta(hours=1)))
    out = env.sync(config)
    assert out.error is not None and out.error.kind == SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert out.error.sent_requests is False and out.task_state == "skipped"
    assert "beyond max_wait=300s" in str(out.error) and "next slot in 3591.0s" in str(out.error)
    assert env.sleeps == [] and env.demo.requests() == []
    assert out.result.to_dict()["error"] == "RATE_LIMIT_EXCEEDED"


# -- retries and waits -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["proportional", "full", "decorrelated"])
def test_retries_are_bounded_and_wait_exactly_the_seeded_backoff(
    env: Env, strategy: Literal["proportional", "full", "decorrelated"]
) -> None:
    env.demo.set_fault("error", source="sponsored")
    config = fast_config(backoff=BackoffConfig(strategy=strategy, jitter_factor=0.1), max_retries=3)
    out = env.sync(config, rng=random.Random(1234))
    assert out.error is not None and out.error.kind == SyncErrorKind.HTTP_ERROR
    assert "gave up after 3 retries" in str(out.error)
    assert env.sleeps == expected_backoff(config, 3, 1234)
    assert len(env.demo.requests("sponsored")) == 4
    assert out.result.retry_count == 3
    assert out.task_state == "failed"


def test_default_backoff_is_about_1_2_4_seconds(env: Env) -> None:
    env.demo.set_fault("outage", source="sponsored", count=3)
    config = fast_config(backoff=BackoffConfig(), max_retries=3)
    out = env.sync(config, rng=random.Random(5))
    assert out.error is None and out.result.retry_count == 3
    assert env.sleeps == expected_backoff(config, 3, 5)
    for wait, base in zip(env.sleeps, [1.0, 2.0, 4.0], strict=True):
        assert base * 0.9 <= wait <= base * 1.1


def test_the_time_budget_is_checked_once_per_wait(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before each admission (no wait) and once per wait: a retry wait and a full-window wait."""
    checked: list[float] = []
    original = SyncRun._check_budget

    def spy(run: SyncRun, upcoming_wait: float) -> None:
        checked.append(upcoming_wait)
        original(run, upcoming_wait)

    monkeypatch.setattr(SyncRun, "_check_budget", spy)
    env.demo.set_fault("rate_limit", source="sponsored", count=1, retry_after="7")
    assert env.sync(fast_config()).error is None
    assert checked == [0.0, 7.0, 0.0]
    checked.clear()
    window_full(env, "sponsored", (T0 - 50, T0 - 10))
    config = fast_config(rate_limit=RateLimitConfig(max_requests=2, window=60 * SECOND))
    assert env.sync(config).error is None
    assert checked == [0.0, env.sleeps[-1], 0.0]


def test_max_retries_zero_sends_once(env: Env) -> None:
    env.demo.set_fault("error", source="sponsored")
    out = env.sync(fast_config(max_retries=0))
    assert out.error is not None and "gave up after 0 retries" in str(out.error)
    assert env.sleeps == [] and len(env.demo.requests()) == 1


@pytest.mark.parametrize(
    ("mode", "retry_after", "wait"),
    [
        ("rate_limit", "7", 7.0),
        ("rate_limit", http_date(T0 + 20), 20.0),
        ("outage", "9", 9.0),
        ("outage", http_date(T0 + 12), 12.0),
        ("rate_limit", "0", 1.0),  # below the backoff: the backoff stands
        ("rate_limit", http_date(T0 - 60), 1.0),  # a past date means 0
    ],
    ids=["429-seconds", "429-date", "503-seconds", "503-date", "429-zero", "429-past-date"],
)
def test_retry_after_raises_the_wait_to_its_value(env: Env, mode: str, retry_after: str, wait: float) -> None:
    env.demo.set_fault(mode, source="sponsored", count=1, retry_after=retry_after)
    out = env.sync(fast_config())
    assert out.error is None and out.result.retry_count == 1
    assert env.sleeps == [wait]
    assert env.statuses("sponsored") == [429 if mode == "rate_limit" else 503, 200]


def test_retry_after_beyond_max_wait_ends_the_sync_without_waiting(env: Env) -> None:
    env.demo.set_fault("rate_limit", source="sponsored", retry_after="301")
    out = env.sync(fast_config(max_wait=300 * SECOND))
    assert out.error is not None and out.error.kind == SyncErrorKind.RATE_LIMITED
    assert "Retry-After 301s (retry 1) is beyond max_wait=300s" in str(out.error)
    assert env.sleeps == [] and len(env.demo.requests()) == 1
    assert out.result.retry_count == 0


def test_retry_after_beyond_defer_after_asks_to_defer(env: Env) -> None:
    env.demo.set_fault("rate_limit", source="sponsored", retry_after="30")
    with pytest.raises(SyncWaitRequired) as waited:
        env.sync(fast_config(defer_after=5 * SECOND))
    assert waited.value.seconds == 30.0
    assert env.sleeps == [] and len(env.demo.requests()) == 1


# -- breaker ---------------------------------------------------------------------------------------


def test_breaker_opens_during_a_run_and_stops_it_then_blocks_the_next_sync(env: Env) -> None:
    env.demo.set_fault("error", source="sponsored")
    config = fast_config(circuit_breaker=CircuitBreakerConfig(failure_threshold=3), max_retries=5)
    out = env.sync(config)
    assert out.error is not None and out.error.kind == SyncErrorKind.HTTP_ERROR
    assert "circuit breaker opened after 3 failures" in str(out.error)
    assert out.task_state == "failed"
    assert len(env.demo.requests()) == 3 and env.sleeps == [1.0, 2.0]
    b = stored(env.store, "sponsored").breaker
    assert (b.state, b.failure_count, b.opened_at) == (BreakerState.OPEN, 3, T0 + 3)
    assert [(t.source_state, t.target_state) for t in out.guard.transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN)
    ]

    env.demo.clear_faults()
    env.clock.advance(60)
    again = env.sync(config)
    assert again.error is not None and again.error.kind == SyncErrorKind.CIRCUIT_BREAKER_OPEN
    assert again.error.sent_requests is False and again.task_state == "skipped"
    assert "next probe in 240s" in str(again.error)
    assert len(env.demo.requests()) == 3  # nothing more was sent


def test_open_breaker_sends_nothing_even_to_a_healthy_api(env: Env) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(BreakerState.OPEN, failure_count=5, opened_at=T0 - 10))
    out = env.sync(fast_config())
    assert out.error is not None and out.error.kind == SyncErrorKind.CIRCUIT_BREAKER_OPEN
    assert env.demo.requests() == [] and env.sleeps == []
    assert out.result.retry_count == 0 and out.result.items_processed == 0


def test_half_open_probe_success_closes_the_breaker(env: Env) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(BreakerState.OPEN, failure_count=5, opened_at=T0 - 301))
    out = env.sync(fast_config())
    assert out.error is None and out.result.items_processed == 12
    assert len(env.demo.requests()) == 1
    b = stored(env.store, "sponsored").breaker
    assert (b.state, b.failure_count, b.opened_at) == (BreakerState.CLOSED, 0, None)
    assert [(t.source_state, t.target_state) for t in out.guard.transitions] == [
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_half_open_probe_failure_reopens_with_a_fresh_timer_and_no_retry(env: Env) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(BreakerState.OPEN, failure_count=5, opened_at=T0 - 301))
    env.demo.set_fault("outage", source="sponsored")
    out = env.sync(fast_config(max_retries=3))
    assert out.error is not None and out.error.kind == SyncErrorKind.HTTP_ERROR
    assert len(env.demo.requests()) == 1 and env.sleeps == []
    b = stored(env.store, "sponsored").breaker
    assert (b.state, b.opened_at) == (BreakerState.OPEN, T0)


def test_404_fails_at_once_without_retry_and_without_a_breaker_failure(env: Env) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(failure_count=2))
    env.demo.set_fault("not_found", source="sponsored")
    out = env.sync(fast_config())
    assert out.error is not None and out.error.kind == SyncErrorKind.HTTP_ERROR
    assert "-> 404" in str(out.error)
    assert len(env.demo.requests()) == 1 and env.sleeps == []
    assert stored(env.store, "sponsored").breaker.failure_count == 2


def test_429_is_retried_but_not_counted_by_the_breaker(env: Env) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(failure_count=4))  # one failure from opening
    env.demo.set_fault("rate_limit", source="sponsored", retry_after=None)
    out = env.sync(fast_config(max_retries=3))
    assert out.error is not None and out.error.kind == SyncErrorKind.RATE_LIMITED
    assert len(env.demo.requests()) == 4 and env.sleeps == [1.0, 2.0, 4.0]
    b = stored(env.store, "sponsored").breaker
    assert (b.state, b.failure_count) == (BreakerState.CLOSED, 4)


# -- state I/O -------------------------------------------------------------------------------------


def test_one_page_sync_reads_state_twice_and_writes_it_twice(env: Env) -> None:
    out = env.sync(fast_config("sponsored"))
    assert out.error is None and len(env.demo.requests()) == 1
    # the state is read at the first request's admission (not when the task starts) and the slot is
    # written before the request; the result's write re-reads first (a foreign write since our last
    # write is merged, not overwritten). The success of a closed breaker with a zero count changes nothing.
    assert (env.store.reads, env.store.writes) == (2, 2)
    state = stored(env.store, "sponsored")
    assert state.last_result is not None and state.last_result["items_processed"] == 12


def test_a_success_after_earlier_failures_resets_the_count_in_the_final_write(env: Env) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(failure_count=3))
    out = env.sync(fast_config("sponsored"))
    assert out.error is None
    assert (env.store.reads, env.store.writes) == (2, 2)
    assert stored(env.store, "sponsored").breaker.failure_count == 0


def test_state_writes_per_page_and_per_counted_failure(env: Env) -> None:
    env.demo.set_fault("error", source="airdrops", count=1)
    out = env.sync(fast_config("airdrops"))
    assert out.error is None and len(env.demo.requests()) == 4
    # the first read is the first admission's (its slot's write follows it), then every write re-reads
    # first: the counted failure, a lease of 2 for the retry and page 2 (one page per second so far,
    # within the 1 s margin), a lease for page 3 (and more, returned unused), the finish (which also
    # takes the success that reset the count)
    assert (env.store.reads, env.store.writes) == (5, 5)


# -- resume ----------------------------------------------------------------------------------------


def test_resume_from_a_checkpoint_continues_at_the_same_page_and_keeps_retry_counters(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rate_limit_second_send(n: int) -> None:
        if n == 2:
            env.demo.set_fault("rate_limit", source="airdrops", count=1, retry_after="30")

    env.spy_sends(monkeypatch, before=rate_limit_second_send)
    config = fast_config("airdrops", defer_after=5 * SECOND)
    checkpoint = Checkpoint(started_at=T0)
    with pytest.raises(SyncWaitRequired) as waited:
        env.sync(config, checkpoint=checkpoint)
    assert waited.value.seconds == 30.0
    assert (checkpoint.pages, checkpoint.items, checkpoint.requests_sent) == (1, 50, 2)
    assert (checkpoint.retry, checkpoint.retry_count, checkpoint.deferrals) == (1, 1, 1)
    learned = SourceState.from_json(env.store.raw["sync_state_airdrops"], "airdrops").quota
    assert learned is not None and (learned.remaining, learned.reset_at) == (0, T0 + 30)
    # page 1 is finished (the handler asked for page 2); page 2 is the loop's page in hand, not yet had
    loop = checkpoint.loops["/airdrops#0"]
    assert (loop.url, loop.number, loop.delivered, loop.done) == (
        env.hook.url_for(AIRDROPS_PAGES[1]),
        2,
        False,
        False,
    )

    # the trigger carries the checkpoint as JSON; the operator resumes with a fresh guard
    resumed = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
    assert resumed == checkpoint
    env.clock.advance(waited.value.seconds)
    out = env.sync(config, checkpoint=resumed)

    assert out.error is None and out.result.items_processed == 120
    assert out.result.retry_count == 1
    assert out.result.duration_ms == 30_000
    assert env.paths("airdrops") == [AIRDROPS_PAGES[0], AIRDROPS_PAGES[1], *AIRDROPS_PAGES[1:]]
    assert env.statuses("airdrops") == [200, 429, 200, 200]
    assert env.sleeps == []
    # each sync reads at its first request, right before that slot's write; every later write re-reads
    # first (the deferral's flush writes the quota the 429 taught, spent for 30 s, so other DAGs of the
    # source wait too)
    assert env.store.reads == env.store.writes


def test_retries_stay_bounded_across_deferrals(env: Env) -> None:
    env.demo.set_fault("rate_limit", source="sponsored", retry_after="30")
    config = fast_config(max_retries=2, defer_after=5 * SECOND)
    checkpoint = Checkpoint(started_at=T0)
    deferrals = 0
    while True:
        try:
            out = env.sync(config, checkpoint=checkpoint)
            break
        except SyncWaitRequired as waited:
            deferrals += 1
            checkpoint = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
            env.clock.advance(waited.seconds)
        assert deferrals <= 5, "retries must be bounded across deferrals"
    assert deferrals == 2
    assert out.error is not None and out.error.kind == SyncErrorKind.RATE_LIMITED
    assert "gave up after 2 retries" in str(out.error)
    assert len(env.demo.requests()) == 3 and out.result.retry_count == 2


def test_max_sync_duration_counts_the_time_spent_deferred(env: Env) -> None:
    env.demo.set_fault("rate_limit", source="sponsored", retry_after="40")
    config = fast_config(max_sync_duration=60 * SECOND, defer_after=5 * SECOND)
    checkpoint = Checkpoint(started_at=T0)
    with pytest.raises(SyncWaitRequired) as waited:
        env.sync(config, checkpoint=checkpoint)
    env.clock.advance(waited.value.seconds)
    out = env.sync(config, checkpoint=replace(checkpoint))
    assert out.error is not None and out.error.kind == SyncErrorKind.TIMEOUT
    assert "max_sync_duration=60s" in str(out.error)
    assert len(env.demo.requests()) == 2


# -- log lines -------------------------------------------------------------------------------------


def logged(capfd: pytest.CaptureFixture[str], marker: str) -> list[tuple[str, str]]:
    """(level, message) of the operator's log lines containing ``marker`` (structlog writes to stdout)."""
    found = []
    for line in capfd.readouterr().out.splitlines():
        _, sep, rest = line.partition(" [")
        if sep and marker in rest:
            level, _, message = rest.partition("] ")
            found.append((level.strip(), message.rsplit(" [airflow.task", 1)[0]))
    return found


def test_a_failed_attempt_is_a_warning_naming_its_url_once(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    env.demo.set_fault("outage", source="sponsored", count=1)
    out = env.sync(fast_config(max_retries=1))
    assert out.error is None
    (failed_level, failed), (ok_level, ok) = logged(capfd, "(attempt ")
    assert (failed_level, ok_level) == ("warning", "info")
    assert failed.startswith("HTTP_ERROR (GET /sponsored -> 503 Service Unavailable) | breaker closed 1/")
    assert failed.count("/sponsored") == 1 and failed.endswith("% (attempt 1)"), failed
    assert ok.startswith("ok | breaker closed 0/") and ok.endswith("| GET /sponsored (attempt 2)"), ok


def test_the_result_line_says_what_failed_once_without_retry_0(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    env.seed("sponsored", breaker=BreakerSnapshot(state=BreakerState.OPEN, opened_at=T0, failure_count=5))
    env.sync(fast_config())
    lines = logged(capfd, "✗ sponsored")
    assert len(lines) == 1, lines
    level, line = lines[0]
    assert level == "warning" and line.startswith("✗ sponsored: CIRCUIT_BREAKER_OPEN: "), line
    assert "retry" not in line


def test_the_success_line_counts_one_item_as_one_item(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    def one_item(ctx: Any) -> int:
        ctx.request()
        return 1

    env.sync(fast_config(), handler=one_item)
    assert next(line for _, line in logged(capfd, "✓ sponsored")).startswith("✓ sponsored: 1 item in ")


def test_a_sync_that_gives_up_says_how_many_retries_once(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    env.demo.set_fault("outage", source="sponsored")
    env.sync(fast_config(max_retries=1))
    [(level, line)] = logged(capfd, "✗ sponsored")
    assert level == "warning" and line.startswith("✗ sponsored: HTTP_ERROR: GET /sponsored -> 503 "), line
    assert line.endswith("; gave up after 1 retry") and line.count("retr") == 1, line


def test_the_start_line_says_one_retry_in_the_singular(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    env.sync(fast_config(max_retries=1))
    [(_, line)] = logged(capfd, "Syncing sponsored")
    assert line.endswith("| up to 1 retry per request"), line
