"""The demo's child processes: each logs to its own file and leads its own process group.

``Processes.stop()`` signals every group at once, reports each process as it exits and kills what
is still running after ``grace`` seconds, so Ctrl-C ends the demo in seconds, saying what it stops.
A server whose port has closed is done: Airflow's api-server then spends ~10 s in the interpreter's
final garbage collection, which the demo does not wait for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Say = Callable[[str], None]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None  # a server: done once nothing listens here any more

    def done(self) -> bool:
        if not _group_alive(self.proc.pid, self.proc):
            return True
        if self.port is not None and not port_open(self.port):
            _signal_group(self.proc.pid, signal.SIGKILL)  # only the interpreter's teardown is left
            return True
        return False


class Processes:
    def __init__(
        self, env: dict[str, str], logs: Path, on_start: Callable[[list[Child]], None] | None = None
    ) -> None:
        self.env = env
        self.logs = logs
        self.children: list[Child] = []
        self._on_start = on_start  # called with every child after each start (the demo's PID file)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, cmd: list[str], port: int | None = None) -> Child:
        """Start ``cmd`` in a new session (so its whole group can be stopped), output to ``<name>.log``."""
        path = self.log_path(name)
        with open(path, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, path, port)
        self.children.append(child)
        if self._on_start is not None:
            self._on_start(self.children)
        return child

    def run(self, name: str, cmd: list[str]) -> None:
        """Run ``cmd`` to completion, output to ``<name>.log``; on failure exit naming the log."""
        path = self.log_path(name)
        with open(path, "ab") as log:
            code = subprocess.run(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT).returncode
        if code:
            raise SystemExit(
                f"{name} failed (exit code {code}); its output:\n{tail(path)}\n(full log: {path})"
            )

    def exited(self) -> Child | None:
        """The first child that has exited, if any."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self, say: Say, grace: float = 8.0) -> float:
        """SIGTERM every group at once, SIGKILL what is left after ``grace`` s; return the seconds taken."""
        started = time.monotonic()
        alive = [c for c in self.children if _group_alive(c.proc.pid, c.proc)]
        if not alive:
            return 0.0
        say(f"Stopping {', '.join(c.name for c in alive)} ...")
        for child in alive:
            _signal_group(child.proc.pid, signal.SIGTERM)
        deadline = started + grace
        try:
            while alive and time.monotonic() < deadline:
                time.sleep(0.2)
                for child in [c for c in alive if c.done()]:
                    alive.remove(child)
                    say(f"  {child.name} stopped ({time.monotonic() - started:.1f}s)")
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait any longer
            pass
        for child in alive:
            _signal_group(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=2)
            say(f"  {child.name} did not stop within {grace:.0f}s: killed")
        return time.monotonic() - started


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int, proc: subprocess.Popen[Any] | None = None) -> bool:
    if proc is not None:
        proc.poll()  # reap the leader, or its zombie keeps the group alive
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
