"""The demo's PID file (``<home>/demo.pid``): what a demo left running when its launcher died hard.

The launcher records itself and every child process group it starts (pid and start time, so a
recycled pid is never mistaken for ours) and removes the file once it has stopped them. ``make demo``
and ``make stop`` call ``stop_leftovers()``: it signals what is still running from that list, SIGKILLs
what is left after ``grace`` seconds and removes the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

PID_FILE = "demo.pid"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Recorded:
    name: str
    pid: int
    created: float  # psutil's create_time(): tells our process from a later one with the same pid

    def running(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.created and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def pid_file(home: Path) -> Path:
    return home / PID_FILE


def record(home: Path, processes: Iterable[tuple[str, int]]) -> None:
    """Write ``(name, pid)`` of the launcher and each child group leader (atomically)."""
    entries = []
    for name, pid in processes:
        with contextlib.suppress(psutil.Error):
            entries.append({"name": name, "pid": pid, "created": psutil.Process(pid).create_time()})
    path = pid_file(home)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    tmp.replace(path)


def forget(home: Path) -> None:
    pid_file(home).unlink(missing_ok=True)


def read(home: Path) -> list[Recorded]:
    """What the PID file lists and is still running (an unreadable file lists nothing)."""
    try:
        entries = json.loads(pid_file(home).read_text())
        recorded = [Recorded(str(e["name"]), int(e["pid"]), float(e["created"])) for e in entries]
    except (OSError, ValueError, TypeError, KeyError):
        return []
    return [r for r in recorded if r.pid != os.getpid() and r.running()]


def stop_leftovers(home: Path, say: Say, grace: float = 8.0) -> bool:
    """Stop what an earlier demo in ``home`` left running; False if nothing was."""
    alive = read(home)
    if not alive:
        forget(home)
        return False
    names = ", ".join(f"{r.name} (pid {r.pid})" for r in alive)
    say(f"An earlier demo in {home} is still running: stopping {names} ...")
    for leftover in alive:
        _signal(leftover.pid, signal.SIGTERM)
    started = time.monotonic()
    deadline = started + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [r for r in alive if r.running()]
    for leftover in alive:
        _signal(leftover.pid, signal.SIGKILL)
        say(f"  {leftover.name} (pid {leftover.pid}) did not stop within {grace:.0f}s: killed")
    forget(home)
    say(f"Stopped in {time.monotonic() - started:.1f}s.")
    return True


def _signal(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (a child) or, failing that, the process (the launcher)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
