"""A worker clock off the API's by more than the safety margin is reported once per sync, from the
``Date`` header a real local HTTP server sends (issue 17 item 13)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_sync_provider.run.sync_run import SyncRun
from tests.hook import FakeClock, Reply, ScriptedServer, connect, fast_config, make_hook


class Log(list[str]):
    def __bool__(self) -> bool:  # ``open_guard(log=...)`` falls back to the hook's log on a falsy one
        return True

    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        self.append(msg % args if args else msg)

    def info(self, *_: Any, **__: Any) -> None:
        pass


def requests_with_clock(monkeypatch: pytest.MonkeyPatch, behind: float) -> Log:
    """Three one-request pages through the real hook and guard; our clock reads ``behind`` s early."""
    log = Log()
    with ScriptedServer([Reply.page([1])]) as server:  # http.server stamps every response with Date
        connect(monkeypatch, server.url)
        clock = FakeClock(time.time() - behind)
        hook = make_hook(clock)
        config = fast_config("airdrops")
        guard = hook.open_guard(config, log=log)
        run = SyncRun(config, hook, guard, clock=clock, sleep=clock.advance, log=log)
        for _ in range(3):
            run.request("GET", "/airdrops")
            clock.now = time.time() - behind
    return log


def skew_warnings(log: Log) -> list[str]:
    return [m for m in log if "clock is at least" in m]


def test_a_clock_5_s_behind_the_api_is_warned_once_per_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings = skew_warnings(requests_with_clock(monkeypatch, behind=5.0))
    assert len(warnings) == 1
    assert (
        "behind the API's (its Date header)" in warnings[0] and "rate_limit.safety_margin (1s)" in warnings[0]
    )


def test_a_clock_ahead_is_warned_too(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings = skew_warnings(requests_with_clock(monkeypatch, behind=-5.0))
    assert len(warnings) == 1 and "ahead of the API's" in warnings[0]


def test_a_clock_in_step_with_the_api_is_not_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    assert skew_warnings(requests_with_clock(monkeypatch, behind=0.0)) == []
