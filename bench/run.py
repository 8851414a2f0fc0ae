"""Run every benchmark, print a markdown table and write the results as JSON.

    python bench/run.py [--quick] [--out PATH] [--only parse,outage,...]

Default output: ``bench/results/latest.json``. ``--quick`` uses smaller sizes and a 20 s wait
(under 5 minutes on 2 idle cores). See ``bench/README.md`` for what each measure means.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PURE = ("parse", "jitter", "quota", "outage", "load", "state")
REAL = ("outage_slice", "overhead", "deferral")
OWN_SERVER = (
    "learned_quota",
    "windows",
    "adaptive",
    "bulk",
)  # against their own local API, real clock (minutes)
OWN_AIRFLOW = ("scale",)  # starts its own deployments, after the shared one has stopped
ALL = PURE + REAL + OWN_SERVER + OWN_AIRFLOW


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 20 s wait (< 5 min)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--only", default=",".join(ALL), help=f"comma-separated subset of: {', '.join(ALL)} (default: all)"
    )
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    return args


def isolate_airflow() -> None:
    """A private AIRFLOW_HOME for the in-process parts (DagBag, imports): no user config or DB."""
    home = tempfile.mkdtemp(prefix="bench-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    for key in [k for k in os.environ if k.startswith("AIRFLOW__") or k.startswith("AIRFLOW_CONN_")]:
        del os.environ[key]
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(home) / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )


def measured(results: dict[str, Any], timings: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    started = time.monotonic()
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        value = fn()
    except Exception as exc:
        traceback.print_exc()
        value = {"error": f"{type(exc).__name__}: {exc}"}
    timings[name] = round(time.monotonic() - started, 1)
    print(f"[bench] {name} done in {timings[name]} s", file=sys.stderr, flush=True)
    results[name] = value
    return value


def meta(quick: bool) -> dict[str, Any]:
    from airflow_sync_provider.version import __version__

    commit, dirty = None, None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(REPO)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "-uno"], capture_output=True, text=True, check=True
        ).stdout
        dirty = bool(status.strip())
    import airflow

    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "provider_version": __version__,
        "git_commit": commit,
        "git_tracked_files_modified": dirty,
        "airflow_version": airflow.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
    }


class RealAirflow:
    """The demo API and a throwaway Airflow, started in the background while the simulations run
    (they are deterministic, so sharing the CPU with Airflow's start-up cannot change their results)."""

    def __init__(self, quick: bool) -> None:
        from airflow_sync_provider.demo.server import DemoServer
        from bench.deployment import BenchDeployment

        # clients that drop keep-alive connections make the demo log tracebacks: not our measurements
        logging.getLogger("airflow_sync_provider.demo.server").setLevel(logging.CRITICAL)
        self.demo = DemoServer(port=0).start()
        self.deployment = BenchDeployment(self.demo, overhead_reps=5 if quick else 20)
        self.error: str | None = None
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._start, name="bench-airflow-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        started = time.monotonic()
        try:
            self.deployment.start()
        except Exception as exc:
            traceback.print_exc()
            self.error = f"{type(exc).__name__}: {exc}"
        self.seconds = round(time.monotonic() - started, 1)

    def ready(self) -> bool:
        self._thread.join()
        return self.error is None

    def stop(self) -> None:
        self._thread.join()
        try:
            self.deployment.stop()
        finally:
            self.demo.stop()


def run_real(
    results: dict[str, Any], timings: dict[str, float], only: list[str], quick: bool, real: RealAirflow
) -> None:
    from bench import deferral, outage, overhead

    print("[bench] waiting for Airflow to start ...", file=sys.stderr, flush=True)
    ready = real.ready()
    timings["airflow_start"] = real.seconds or 0.0
    wanted = [name for name in REAL if name in only]
    if not ready:
        for name in wanted:
            results[name] = {"error": f"Airflow did not start: {real.error}"}
        return
    deployment = real.deployment
    if "outage_slice" in wanted:
        measured(results, timings, "outage_slice", lambda: outage.real_slice(deployment))
    if "overhead" in wanted:
        measured(results, timings, "overhead", lambda: overhead.run(deployment))
    if "deferral" in wanted:
        measured(results, timings, "deferral", lambda: deferral.run(deployment, 20 if quick else 120))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    isolate_airflow()
    started = time.monotonic()
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    results["meta"] = meta(args.quick)

    from bench import jitter, load, outage_matrix, parse, quota, state

    simulations: dict[str, Callable[..., dict[str, Any]]] = {
        "jitter": jitter.run,
        "quota": quota.run,
        "outage": outage_matrix.run,
        "load": load.run,
    }
    if "parse" in args.only:  # timed: runs alone, before Airflow starts in the background
        measured(results, timings, "parse", lambda: parse.run(quick=args.quick))
    if "state" in args.only:  # timed too (ms per page): alone as well
        measured(results, timings, "state", lambda: state.run(quick=args.quick))
    real = RealAirflow(args.quick) if any(name in args.only for name in REAL) else None
    try:
        for name, simulate in simulations.items():
            if name in args.only:
                measured(results, timings, name, functools.partial(simulate, quick=args.quick))
        if real is not None:
            run_real(results, timings, args.only, args.quick, real)
    finally:
        if real is not None:
            real.stop()
    if "learned_quota" in args.only:  # real sleeps: after the shared Airflow has stopped
        from bench import learned_quota

        measured(results, timings, "learned_quota", lambda: learned_quota.run(quick=args.quick))
    if "windows" in args.only:  # a per-second and a per-day window at a local API, real sleeps
        from bench import windows

        measured(results, timings, "windows", lambda: windows.run(quick=args.quick))
    if "adaptive" in args.only:  # 10 minutes of real clock (quick: 2)
        from bench import adaptive

        measured(results, timings, "adaptive", lambda: adaptive.run(quick=args.quick))
    if "bulk" in args.only:  # 100,000 items three ways, each side in its own interpreter
        from bench import bulk

        measured(results, timings, "bulk", lambda: bulk.run(quick=args.quick))
    if "scale" in args.only:
        from bench import scale

        measured(results, timings, "scale", lambda: scale.run(quick=args.quick))
    if "outage_slice" in results:
        target = results.get("outage")
        if isinstance(target, dict) and "error" not in target:
            target["real_slice"] = results.pop("outage_slice")
    results["meta"].update(
        seconds=round(time.monotonic() - started, 1),
        seconds_per_benchmark=timings,
        load_average_at_end=list(os.getloadavg()),
    )

    from bench.table import markdown

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.json")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(args.out)
    print(markdown(results))
    print(f"\nJSON: {args.out} ({results['meta']['seconds']} s, {results['meta']['mode']} run)")
    errors = [name for name, value in results.items() if isinstance(value, dict) and "error" in value]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
