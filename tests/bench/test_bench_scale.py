"""The pure parts of ``bench/scale.py``: seeded states, the StatsD timer parsing, the table rows."""

from __future__ import annotations

import random
import socket
import time

import pytest

from airflow_sync_provider.state.store import SourceState
from bench import scale, table
from tests.harness.statsd import UdpListener


def test_seeded_states_are_valid_and_mixed() -> None:
    rng = random.Random(12)
    now = time.time()
    states = [
        SourceState.from_json(scale.state_json(f"s{i:05d}", now, rng), f"s{i:05d}", on_warning=pytest.fail)
        for i in range(1000)
    ]
    kinds = {s.breaker.state.value for s in states}
    assert kinds == {"open", "half-open", "closed"}
    assert any(s.breaker.state.value == "closed" and s.breaker.failure_count for s in states)
    assert all(len(s.window) == 30 for s in states)


def test_loop_durations_keep_only_the_scheduler_loop_timer() -> None:
    listener = UdpListener()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for line in (
                b"airflow.scheduler.scheduler_loop_duration:12.5|ms",
                b"airflow.scheduler.heartbeat:1|c",
                b"airflow.scheduler.scheduler_loop_duration:7|ms",
            ):
                sock.sendto(line, ("127.0.0.1", listener.port))
            deadline = time.monotonic() + 10
            while len(listener.packets) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)  # the listener's thread must hold them before the window opens
            assert len(listener.packets) == 3

            def send_later() -> None:
                time.sleep(0.3)
                sock.sendto(
                    b"airflow.scheduler.scheduler_loop_duration:9.25|ms", ("127.0.0.1", listener.port)
                )

            import threading

            sender = threading.Thread(target=send_later)
            sender.start()
            values = scale.loop_durations(listener, 1.0)  # clears what came before the window
            sender.join()
    finally:
        listener.close()
    assert values == [9.25]


def test_table_rows_for_scale() -> None:
    size = {"sources": 1000, "ours_loop_ms": 110.0, "plain_loop_ms": 100.0, "loop_ratio_vs_plain": 1.1}
    results = {
        "scale": {
            "dashboard_ms_1000_sources": 420.5,
            "dashboard_rows": 1006,
            "scheduler_loop_ratio_vs_plain": 1.1,
            "by_size": [size],
        }
    }
    text = table.markdown(results)
    assert "scale: GET /sync-provider/api/states, 1,006 rows, median ms | 420 |" in text
    assert "< 1,000 (met)" in text
    assert "scale: scheduler loop, 1,000 sources in own pools vs plain, median ms | 110 | 100" in text
