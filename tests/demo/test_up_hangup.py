"""A real ``make demo`` whose terminal goes away (SIGHUP to its process group) leaves nothing behind,
and a demo killed too hard to clean up (SIGKILL) is stopped by ``make stop`` through its PID file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from airflow_sync_provider.demo import leftovers
from airflow_sync_provider.demo.processes import port_open

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
READY_WITHIN = 420.0  # start-up on a busy 2-core machine; not what the test measures
GONE_WITHIN = 10.0  # the bound on cleaning up


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for sock in socks:
        sock.close()
    return ports


class Demo:
    """``make demo`` in its own session (as a terminal's foreground job), on free ports and its own home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        airflow, api, worker_logs, trigger_logs = free_ports(4)
        self.ports = [airflow, api, worker_logs, trigger_logs]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "SYNC_DEMO_HOME": str(home),
                "SYNC_DEMO_AIRFLOW_PORT": str(airflow),
                "SYNC_DEMO_PORT": str(api),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
            }
        )
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "demo"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while not any("Ready in" in line for line in self.lines):
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, "\n".join(self.lines)
            time.sleep(1)

    def processes(self) -> list[psutil.Process]:
        """The launcher, every process group it started, and all their descendants."""
        found: list[psutil.Process] = []
        for recorded in leftovers.read(self.home):
            proc = psutil.Process(recorded.pid)
            found += [proc, *proc.children(recursive=True)]
        return found

    def kill_all(self) -> None:
        for recorded in leftovers.read(self.home):
            leftovers._signal(recorded.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    started = Demo(tmp_path / "home")
    try:
        yield started
    finally:
        started.kill_all()


def alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}")
        except psutil.NoSuchProcess:
            pass
    return left


def wait_gone(procs: list[psutil.Process], ports: list[int]) -> tuple[list[str], list[int]]:
    deadline = time.monotonic() + GONE_WITHIN
    while True:
        left, busy = alive(procs), [p for p in ports if port_open(p)]
        if (not left and not busy) or time.monotonic() > deadline:
            return left, busy
        time.sleep(0.2)


def test_sighup_to_make_demo_stops_every_process_and_frees_every_port(demo: Demo) -> None:
    demo.wait_ready()
    procs = demo.processes()
    assert len(procs) >= 8, [p.cmdline() for p in procs]  # launcher, demo API, 4 components, 2 log servers
    assert all(port_open(p) for p in demo.ports)
    # every server of the demo, the task-log servers included, listens on loopback only
    listening = [c.laddr for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert sorted({a.ip for a in listening if a.port in demo.ports}) == ["127.0.0.1"], listening

    os.killpg(demo.proc.pid, signal.SIGHUP)  # the terminal closed: its foreground job gets SIGHUP

    left, busy = wait_gone(procs, demo.ports)
    assert not left and not busy, (left, busy, demo.lines[-15:])
    assert not leftovers.pid_file(demo.home).exists()


def test_make_stop_stops_a_demo_killed_too_hard_to_clean_up(demo: Demo) -> None:
    demo.wait_ready()
    procs = demo.processes()
    launcher = leftovers.read(demo.home)[0]
    assert launcher.name == "launcher"
    os.kill(launcher.pid, signal.SIGKILL)  # no handler runs: its children keep running
    time.sleep(1)
    assert alive(procs[1:])

    stop = subprocess.run(
        ["make", "--no-print-directory", "stop"],
        cwd=REPO,
        env={**os.environ, "SYNC_DEMO_HOME": str(demo.home)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert f"An earlier demo in {demo.home} is still running: stopping demo-api (pid" in stop.stdout
    left, busy = wait_gone(procs, demo.ports)
    assert not left and not busy, (left, busy, stop.stdout)
