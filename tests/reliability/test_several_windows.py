"""Several windows per source (issue 19 item 1), guard level (InMemoryStateStore, fake clock): a
request goes only when every window has room, the further windows are shared like the first one
(another run, a foreign write), and a day window of 250,000 keeps the state under 8 KB."""

from __future__ import annotations

from datetime import timedelta

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.config.windows import WindowLimit
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, merge, variable_key
from tests.reliability.test_shared_state import OK, T0, Clock, Log

KEY = variable_key("crm")
DAY = 86_400.0


def config(short: tuple[int, float], *longer: tuple[int, float]) -> SyncConfig:
    extra = tuple(WindowLimit(max_requests=n, window=timedelta(seconds=w)) for n, w in longer)
    limit = RateLimitConfig(max_requests=short[0], window=timedelta(seconds=short[1]), extra_windows=extra)
    return SyncConfig(source="crm", rate_limit=limit)


def sync(store: InMemoryStateStore, clock: Clock, cfg: SyncConfig, seconds: float, gap: float = 0.5) -> int:
    """Send whenever admitted, for ``seconds`` of fake time; the number sent."""
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer="run")
    sent, end = 0, clock.now + seconds
    while clock.now < end:
        admission = guard.admit()
        if not admission.allowed:
            clock.now += min(max(admission.wait, 0.01), 1.0)
            continue
        clock.now += gap
        guard.record(OK)
        sent += 1
    guard.finish({"sent": sent})
    return sent


def max_in_any(times: list[float], window: float) -> int:
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_a_request_goes_only_when_every_window_has_room() -> None:
    store, clock = InMemoryStateStore(), Clock()
    cfg = config((5, 10.0), (12, 60.0))
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer="run")
    sent: list[float] = []
    refusals: list[str] = []
    while clock.now < T0 + 200:
        admission = guard.admit()
        if admission.allowed:
            sent.append(clock.now)
            clock.now += 0.2
            guard.record(OK)
        else:
            refusals.append(admission.message)
            clock.now += admission.wait + 0.001
    hold = guard.hold_seconds  # the margin: min(1 s, window / 10)
    assert max_in_any(sent, 10.0 + hold - 10.0) <= 5 and max_in_any(sent, 60.0) <= 12
    assert any("12 requests per 60s, rate_limit.extra_windows" in m for m in refusals)
    assert any("5 requests per 10s" in m for m in refusals)
    # 200 s hold at most 3 full minutes of 12 and a part: more than 5 per 10 s would allow
    assert 36 <= len(sent) <= 48
    assert guard.window_usage() > 0.5


def test_the_further_window_is_shared_by_the_next_run() -> None:
    store, clock = InMemoryStateStore(), Clock()
    cfg = config((5, 1.0), (8, 3600.0))
    assert sync(store, clock, cfg, 30.0) == 8
    clock.now += 60
    assert sync(store, clock, cfg, 30.0) == 0  # the hour still holds 8
    stored = SourceState.from_json(store.raw[KEY], "crm")
    assert sum(len(s.window) for s in stored.extra(3600.0)) == 8


def test_a_foreign_write_merges_the_further_windows_per_writer() -> None:
    t = T0
    ours = SourceState("crm", extra_windows=((DAY, (sh.Share("a", 2, (t, t + 1)),)),))
    theirs = SourceState(
        "crm", extra_windows=((DAY, (sh.Share("a", 1, (t,)), sh.Share("b", 1, (t + 2,)))), (60.0, ()))
    )
    merged = merge(ours, theirs)
    assert sum(len(s.window) for s in merged.extra(DAY)) == 3
    again = SourceState.from_json(merged.to_json(), "crm")
    assert again.extra(DAY) == merged.extra(DAY)


def test_a_day_window_of_250000_keeps_the_state_under_8_kb() -> None:
    store, clock = InMemoryStateStore(), Clock()
    cfg = config((100, 10.0), (250_000, DAY))
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer="run")
    # a day's worth of requests already in the day window, by 24 hourly runs (a share each), then a
    # full 10 s burst
    width = (DAY + guard.margin_seconds) / 100
    hour = 3600.0
    day = tuple(
        sh.Share(
            f"run{k:02d}", 1, bk.from_times((T0 - DAY + k * hour + i * 0.36 for i in range(10_000)), width)
        )
        for k in range(24)
    )
    guard.state = guard.state.replace(extra_windows=((DAY, day),))
    for _ in range(100):
        assert guard.admit().allowed
        clock.now += 0.05
        guard.record(OK)
    assert not guard.admit().allowed
    guard.finish({})
    raw = store.raw[KEY]
    assert len(raw.encode()) < 8 * 1024, len(raw.encode())
    stored = SourceState.from_json(raw, "crm")
    assert sum(len(s.window) for s in stored.extra(DAY)) == 240_100


def test_states_and_the_attempt_line_show_the_fullest_window() -> None:
    from airflow_sync_provider.admin.operations import describe

    store, clock = InMemoryStateStore(), Clock()
    cfg = config((5, 10.0), (12, 3600.0))
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer="run")
    for _ in range(3):  # 3/5 of the 10 s window, 3/12 of the hour
        assert guard.admit().allowed
        guard.record(OK)
    clock.now += 20  # the 10 s window is empty again, the hour holds 3 of 12
    shown = describe(guard.state, cfg, clock.now)
    assert (shown["window_requests"], shown["window_max_requests"], shown["window_seconds"]) == (
        3,
        12,
        3600.0,
    )
    assert guard.window_usage() == 0.25
