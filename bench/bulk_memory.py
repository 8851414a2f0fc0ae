"""Where a bulk sync's memory grows with the number of pages: tracemalloc on ours at two sizes.

    python -m bench.bulk_memory [--sizes 10000,100000] [--top 15] [--out PATH]

For each size, a fresh interpreter runs ours (``bench.bulk.sync_ours``, state in a counted in-memory
Variable API, no latency) against the demo API served by this process, with tracemalloc on (25
frames). It snapshots the traced memory after every tenth of the pages and when dlt's ``normalize``
and ``load`` start, and keeps the largest snapshot. Each allocation is charged twice: to its
innermost line, and to the innermost frame in ``airflow_sync_provider`` (the provider's call that
caused it; ``-`` when none). The report: per site, MB at each size and the growth between them,
largest growth first. Not part of ``bench/run.py`` (tracing makes the sync several times slower).

``--rss`` instead compares peak RSS (no tracing) per size for ours, ours without ``load:`` (pages
only), dlt's ``rest_api`` alone and plain ``requests`` + dlt: which part grows with the pages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bulk import FETCH_ONLY, PAGE, REPO, SIDES, CountingVariables, spawn

FRAMES = 25
PROVIDER = f"{os.sep}airflow_sync_provider{os.sep}"


def _short(frame: tracemalloc.Frame) -> str:
    parts = Path(frame.filename).parts
    for anchor in ("airflow_sync_provider", "dlt", "site-packages", "python3.11"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            start = index if anchor in ("airflow_sync_provider", "dlt") else index + 1
            return f"{'/'.join(parts[start:])}:{frame.lineno}"
    return f"{frame.filename}:{frame.lineno}"


def charge(snapshot: tracemalloc.Snapshot) -> dict[str, Counter[str]]:
    """Bytes per innermost line and per innermost provider frame."""
    by_line: Counter[str] = Counter()
    by_provider: Counter[str] = Counter()
    for stat in snapshot.statistics("traceback"):
        frames = list(stat.traceback)[::-1]  # tracemalloc lists the oldest frame first
        innermost = frames[0]
        by_line[_short(innermost)] += stat.size
        ours = next((f for f in frames if PROVIDER in f.filename and "/demo/" not in f.filename), None)
        by_provider[_short(ours) if ours else "-"] += stat.size
    return {"line": by_line, "provider": by_provider}


def trace_child(url: str, items: int, workdir: Path, top: int, frames: int = FRAMES) -> dict[str, Any]:
    """Run ours with tracemalloc on; the largest snapshot's bytes per site."""
    import dlt

    from airflow_sync_provider.load.loader import import_dlt
    from airflow_sync_provider.run.sync_run import SyncRun
    from bench import bulk

    import_dlt()
    pages = -(-items // PAGE)
    every = max(1, pages // 10)
    best: dict[str, Any] = {"traced": -1}
    requests_seen = 0
    phases: dict[str, dict[str, float]] = {}  # per phase: peak traced MB in it, peak RSS MB at its end

    def phase_ends(name: str) -> None:
        phases[name] = {
            "peak_traced_mb": round(tracemalloc.get_traced_memory()[1] / 2**20, 1),
            "peak_rss_mb_so_far": round(bulk.peak_rss_mb(), 1),
        }
        tracemalloc.reset_peak()

    def consider(phase: str) -> None:
        if not tracemalloc.is_tracing():  # --frames 0: phase RSS only
            return
        current = tracemalloc.get_traced_memory()[0]
        if current > best["traced"]:
            best.update(traced=current, phase=phase, snapshot=tracemalloc.take_snapshot())

    request = SyncRun.request

    def counted(self: SyncRun, *args: Any, **kwargs: Any) -> Any:
        nonlocal requests_seen
        requests_seen += 1
        if requests_seen % every == 0:
            consider(f"page {requests_seen}")
        return request(self, *args, **kwargs)

    def before(name: str, previous: str) -> None:
        method = getattr(dlt.Pipeline, name)

        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            consider(f"dlt {name}")
            phase_ends(previous)
            return method(self, *args, **kwargs)

        setattr(dlt.Pipeline, name, wrapped)

    SyncRun.request = counted  # type: ignore[method-assign]
    before("normalize", "pages and dlt extract")
    before("load", "dlt normalize")
    phase_ends("imports")
    if frames:
        tracemalloc.start(frames)
    loaded = bulk.sync_ours(url, items, workdir, "traced", CountingVariables(0.0))
    consider("end of sync")
    phase_ends("dlt load and the end of the sync")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert loaded == items, (loaded, items)
    sites = charge(best["snapshot"]) if "snapshot" in best else {"line": Counter(), "provider": Counter()}
    return {
        "items": items,
        "peak_traced_mb": round(peak / 2**20, 1),
        "largest_snapshot_mb": round(best["traced"] / 2**20, 1),
        "largest_snapshot_at": best.get("phase"),
        "phases": phases,
        "peak_rss_mb": round(bulk.peak_rss_mb(), 1),
        "sites": {kind: dict(counter.most_common(top * 4)) for kind, counter in sites.items()},
    }


def growth(small: dict[str, Any], large: dict[str, Any], top: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in ("line", "provider"):
        a, b = small["sites"][kind], large["sites"][kind]
        rows = [
            {
                "site": site,
                f"mb_{small['items']}": round(a.get(site, 0) / 2**20, 2),
                f"mb_{large['items']}": round(b.get(site, 0) / 2**20, 2),
                "growth_mb": round((b.get(site, 0) - a.get(site, 0)) / 2**20, 2),
            }
            for site in set(a) | set(b)
        ]
        out[kind] = sorted(rows, key=lambda row: -row["growth_mb"])[:top]
    return out


def rss_by_side(sizes: list[int], out: Path | None) -> int:
    """Peak RSS MB per side and size, each in a fresh interpreter (no warm-up)."""
    from airflow_sync_provider.demo.server import DemoServer

    table: dict[str, dict[str, float]] = {}
    with DemoServer() as demo:
        for side in (*SIDES, FETCH_ONLY):
            for size in sizes:
                result = spawn(side, demo.url, size, variable_ms=0.0, warm_up=False)
                table.setdefault(side, {})[str(size)] = round(result["peak_rss_mb"], 1)
                print(f"[rss] {side} {size:,}: {table[side][str(size)]} MB", file=sys.stderr, flush=True)
    text = json.dumps({"peak_rss_mb": table, "load_average": list(os.getloadavg())}, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--frames",
        type=int,
        default=FRAMES,
        help="frames kept per allocation (0: no tracing, phase RSS only)",
    )
    parser.add_argument("--rss", action="store_true", help="peak RSS per side and size, no tracing")
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-items", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_url:
        with tempfile.TemporaryDirectory(prefix="bench_bulk_trace_") as workdir:
            print(
                json.dumps(
                    trace_child(args.child_url, args.child_items, Path(workdir), args.top, args.frames)
                )
            )
        return 0
    from airflow_sync_provider.demo.server import DemoServer

    sizes = [int(size) for size in args.sizes.split(",")]
    if args.rss:
        return rss_by_side(sizes, args.out)
    runs = []
    with DemoServer() as demo:
        host, port = demo.url.split("://", 1)[1].rsplit(":", 1)
        conn = json.dumps({"conn_type": "http", "host": host, "port": int(port)})
        env = {**os.environ, "AIRFLOW_CONN_SYNC_DEFAULT": conn}
        for size in sizes:
            command = [sys.executable, "-m", "bench.bulk_memory", "--child-url", demo.url]
            command += ["--child-items", str(size), "--top", str(args.top), "--frames", str(args.frames)]
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(f"trace at {size} items failed:\n{done.stderr[-3000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"[trace] {size:,} items: {runs[-1]['largest_snapshot_mb']} MB traced", file=sys.stderr)
    report = {
        "runs": [{k: v for k, v in run.items() if k != "sites"} for run in runs],
        "growth": growth(runs[0], runs[-1], args.top),
        "load_average": list(os.getloadavg()),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
