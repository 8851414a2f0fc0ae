"""``make demo``'s process handling: every group signalled at once, reported, killed after the grace."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from airflow_sync_provider.demo.processes import Processes, port_open

UP = "print('up', flush=True); time.sleep(60)"
POLITE = f"import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); {UP}"
STUBBORN = f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); {UP}"
# a server that closes its port on SIGTERM, then takes long to exit (like the api-server's teardown)
LINGERING_SERVER = """
import signal, socket, sys, time
sock = socket.socket(); sock.bind(("127.0.0.1", int(sys.argv[1]))); sock.listen()
def stop(*_):
    sock.close()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
signal.signal(signal.SIGTERM, stop)
print("up", flush=True)
time.sleep(60)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(path: Path) -> None:
    deadline = time.monotonic() + 20
    while "up" not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{path} never said up"
        time.sleep(0.05)


def test_stop_reports_each_process_and_kills_only_the_stubborn(tmp_path: Path) -> None:
    procs = Processes(dict(os.environ), tmp_path)
    port = free_port()
    polite = procs.start("polite", [sys.executable, "-c", POLITE])
    stubborn = procs.start("stubborn", [sys.executable, "-c", STUBBORN])
    server = procs.start("server", [sys.executable, "-c", LINGERING_SERVER, str(port)], port=port)
    for name in ("polite", "stubborn", "server"):
        wait_until_up(procs.log_path(name))
    assert port_open(port)
    lines: list[str] = []

    procs.stop(lines.append, grace=3.0)

    assert lines[0] == "Stopping polite, stubborn, server ..."
    stopped = sorted(line.split(" stopped (")[0].strip() for line in lines[1:-1])
    assert stopped == ["polite", "server"], lines
    assert lines[-1] == "  stubborn did not stop within 3s: killed"
    for child in (polite, stubborn, server):
        child.proc.wait(timeout=5)
    assert stubborn.proc.returncode == -9 and polite.proc.returncode == 0
    assert server.proc.returncode == -9  # its port closed: not waited for, its teardown cut short


def test_a_failed_step_exits_naming_its_log(tmp_path: Path) -> None:
    procs = Processes(dict(os.environ), tmp_path)
    try:
        procs.run("migrate", [sys.executable, "-c", "print('no such table'); raise SystemExit(3)"])
    except SystemExit as exc:
        message = str(exc)
    else:
        raise AssertionError("no SystemExit")
    assert message.startswith("migrate failed (exit code 3); its output:\nno such table\n")
    assert str(tmp_path / "migrate.log") in message
