"""Bulk: a 1,000-page x 100-item sync into DuckDB (``merge`` on ``id``), ours vs dlt alone vs plain.

Three sides read the same pages of the demo API's ``bulk`` source (``/bulk?limit=100&total=N``,
``Link: rel="next"``), each in its own fresh interpreter (``python -m bench.bulk side ...``) while
the demo API serves from the parent process, one after another, each after a one-page warm-up of
itself in the same interpreter:

- *ours*: the provider's default handler with ``load:`` (merge on ``id``) on a ``SyncRun``, default
  config but for a limit (10,000 per hour) and ``max_pages`` (default 100) that do not bind; the
  state lives in a real ``VariableStateStore`` whose Variable API is an in-memory dict that counts
  every call and spends ``variable_ms`` on it (6.6 ms: the Execution API's round trip that
  ``overhead`` measured in a real worker);
- *dlt alone*: dlt's ``rest_api`` source with the ``header_link`` paginator, same merge;
- *plain*: a ``requests.Session`` following ``Link`` + ``dlt.pipeline().run()`` of the pages.

Variable calls per extra page come from ours' warm-up (1 page) and measured run. Peak RSS: ours
alone at 1,000, 10,000 and 100,000 items, each in a fresh interpreter (``ru_maxrss``). ``--quick``
uses a hundredth of every size (the keys stay; ``items`` says what was measured).

The e2e suite (``tests/e2e/test_celery_postgres.py``) runs *dlt alone*, and ours outside Airflow,
into PostgreSQL with ``spawn(..., postgres=url, dataset=..., cold=True)``: no warm-up, and dlt's
import counted in their seconds, as a first sync in a fresh task process on a Celery worker counts it
in ours.

``python -m bench.bulk_memory`` attributes the memory a sync holds to source lines (tracemalloc)
and compares peak RSS per side (``--rss``); bench/README.md has what it found.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.measure import default_sync, rounded

REPO = Path(__file__).resolve().parents[1]
PAGE = 100
ITEMS = 100_000
RSS_SIZES = (1_000, 10_000, 100_000)
QUICK_DIVISOR = 100  # the quick run measures a hundredth of every size
VARIABLE_MS = 6.6  # overhead: median ms per Variable call through the Execution API in a real worker
MAX_REQUESTS = 10_000  # per hour: far above 1,000 pages, so the window never makes a sync wait
SIDES = ("ours", "dlt_alone", "plain")
FETCH_ONLY = "ours_fetch_only"  # diagnostic (bench.bulk_memory): ours without load:, pages only
TABLE = "bulk"
DATASET = "sync"
POSTGRES_ENV = "BENCH_BULK_POSTGRES"  # spawn's postgres URL for the child: not on its command line
WAREHOUSE_CONN = "bench_warehouse"  # ours into PostgreSQL: the child's Airflow connection of that URL
log = logging.getLogger("bench.bulk")


# -- one side, in a fresh interpreter --------------------------------------------------------------


class CountingVariables:
    """An in-memory Airflow Variable API: every call counted and made to take ``latency_s``."""

    def __init__(self, latency_s: float) -> None:
        self.values: dict[str, Any] = {}
        self.latency_s = latency_s
        self.gets = 0
        self.sets = 0

    @property
    def calls(self) -> int:
        return self.gets + self.sets

    def get(self, key: str, default: Any = None) -> Any:
        self.gets += 1
        time.sleep(self.latency_s)
        return self.values.get(key, default)

    def set(self, key: str, value: Any, description: str | None = None) -> None:
        self.sets += 1
        time.sleep(self.latency_s)
        self.values[key] = value


def endpoint(items: int) -> str:
    return f"/bulk?limit={PAGE}&total={items}"


def sync_ours(
    url: str,
    items: int,
    workdir: Path,
    name: str,
    variables: CountingVariables,
    *,
    load: bool = True,
    postgres: bool = False,
    dataset: str = DATASET,
) -> int:
    """Our sync of ``items`` into ``workdir/name.duckdb``, or with ``postgres`` into ``dataset`` of the
    database of the connection ``WAREHOUSE_CONN`` (``load=False``: pages only, nothing landed);
    Variable calls land in ``variables``. Returns the items loaded (or fetched)."""
    from airflow_sync_provider.config import RateLimitConfig, SyncConfig
    from airflow_sync_provider.config.load import LoadConfig
    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
    from airflow_sync_provider.state.store import VariableStateStore

    config = SyncConfig(
        source=TABLE,
        endpoint=endpoint(items),
        rate_limit=RateLimitConfig(max_requests=MAX_REQUESTS, window=timedelta(hours=1)),
        max_pages=-(-items // PAGE),  # the default (100) would stop a bulk sync; no other setting changed
        load=LoadConfig(
            destination="postgres" if postgres else "duckdb",
            conn_id=WAREHOUSE_CONN if postgres else None,
            path=str(workdir / f"{name}.duckdb"),
            dataset=dataset,
            table=TABLE,
            write_disposition="merge",
            primary_key=("id",),
        )
        if load
        else None,
    )
    hook = RateLimitedSyncHook(conn_id="sync_default", store=VariableStateStore(variable_api=variables))
    run, _ = default_sync(hook, config, log)
    return int(run.checkpoint.load["loaded"]) if load else run.checkpoint.items


def _pipeline(workdir: Path, name: str, postgres: str | None = None, dataset: str = DATASET) -> Any:
    """A dlt pipeline into ``workdir/name.duckdb``, or into the PostgreSQL database at ``postgres``."""
    import dlt

    destination = (
        dlt.destinations.duckdb(str(workdir / f"{name}.duckdb"))
        if postgres is None
        else dlt.destinations.postgres(credentials=postgres)
    )
    return dlt.pipeline(
        pipeline_name=f"bench_bulk_{name}",
        destination=destination,
        dataset_name=dataset,
        pipelines_dir=str(workdir / f"pipelines_{name}"),
    )


def sync_dlt_alone(
    url: str, items: int, workdir: Path, name: str, postgres: str | None = None, dataset: str = DATASET
) -> None:
    """dlt's ``rest_api`` source, header-link paginator, merge on ``id`` (into DuckDB or ``postgres``)."""
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {"base_url": url, "paginator": "header_link"},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": TABLE,
                    "endpoint": {
                        "path": TABLE,
                        "params": {"limit": PAGE, "total": items},
                        "data_selector": "items",
                    },
                }
            ],
        }
    )
    _pipeline(workdir, name, postgres, dataset).run(source)


def sync_plain(url: str, items: int, workdir: Path, name: str) -> None:
    """A ``requests.Session`` following ``Link: rel="next"``, its pages run through ``dlt.pipeline()``."""
    import requests

    def pages() -> Any:
        with requests.Session() as session:
            next_url: str | None = url + endpoint(items)
            while next_url:
                response = session.get(next_url, timeout=30)
                response.raise_for_status()
                yield response.json()["items"]
                next_url = response.links.get("next", {}).get("url")

    _pipeline(workdir, name).run(pages(), table_name=TABLE, write_disposition="merge", primary_key="id")


def rows_in(workdir: Path, name: str, postgres: str | None = None, dataset: str = DATASET) -> int:
    query = f"select count(*), count(distinct id) from {dataset}.{TABLE}"
    if postgres is None:
        import duckdb

        with duckdb.connect(str(workdir / f"{name}.duckdb"), read_only=True) as db:
            row = db.execute(query).fetchone()
    else:
        import psycopg2

        with contextlib.closing(psycopg2.connect(postgres)) as conn, conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone()
    assert row is not None and row[0] == row[1], row  # merge on id: no duplicates
    return int(row[0])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def prepare_dlt(side: str) -> None:
    """Import dlt as ``side`` runs it: ours with our loader's settings; dlt alone and plain with dlt's
    own defaults (a parent that loaded with us may have left our file size in the environment), only
    its telemetry and Airflow config provider off, as for ours."""
    from airflow_sync_provider.load.loader import FILE_MAX_ITEMS_ENV, QUIET_DLT, import_dlt

    if side in ("ours", FETCH_ONLY):
        import_dlt()
        return
    os.environ.update(QUIET_DLT)
    os.environ.pop(FILE_MAX_ITEMS_ENV, None)
    import dlt  # noqa: F401


def run_side(
    side: str,
    url: str,
    items: int,
    workdir: Path,
    variable_ms: float,
    warm_up: bool,
    *,
    postgres: str | None = None,
    dataset: str = DATASET,
    cold: bool = False,
) -> dict[str, Any]:
    """One side's sync of ``items`` (after a one-page warm-up of itself if ``warm_up``): seconds, rows.

    ``postgres`` (a database URL; dlt alone and ours) lands the items there in ``dataset`` instead of
    DuckDB. ``cold`` (no warm-up) counts dlt's import in ``seconds`` too (``import_seconds`` says
    how much), as a first sync in a fresh process counts it; ours' hook is imported before, as a
    task has Airflow and the provider imported before it runs."""
    if postgres is not None and side not in ("dlt_alone", "ours"):
        raise ValueError(f"a postgres destination is for dlt_alone and ours only, not {side}")
    if cold and warm_up:
        raise ValueError("cold measures a first sync: no warm-up")
    if side == "ours" and postgres is not None:
        os.environ[f"AIRFLOW_CONN_{WAREHOUSE_CONN.upper()}"] = postgres
    if side in ("ours", FETCH_ONLY):
        import airflow_sync_provider.hooks.sync  # noqa: F401
    started = time.perf_counter()
    prepare_dlt(side)
    import_seconds = time.perf_counter() - started
    logging.getLogger("airflow_sync_provider").setLevel(logging.WARNING)
    out: dict[str, Any] = {"side": side, "items": items}
    calls: dict[str, int] = {}

    def once(count: int, name: str) -> float:
        started = time.perf_counter()
        if side in ("ours", FETCH_ONLY):
            variables = CountingVariables(variable_ms / 1000)
            loaded = sync_ours(
                url,
                count,
                workdir,
                name,
                variables,
                load=side == "ours",
                postgres=bool(postgres),
                dataset=dataset,
            )
            assert loaded == count, (loaded, count)
            calls[name] = variables.calls
        elif side == "dlt_alone":
            sync_dlt_alone(url, count, workdir, name, postgres, dataset)
        else:
            sync_plain(url, count, workdir, name)
        return time.perf_counter() - started

    if warm_up:
        once(PAGE, "warm_up")
    out["seconds"] = once(items, "measured") + (import_seconds if cold else 0.0)
    out["import_seconds"] = import_seconds
    out["rows"] = items if side == FETCH_ONLY else rows_in(workdir, "measured", postgres, dataset)
    out["peak_rss_mb"] = peak_rss_mb()
    if side == "ours":
        out["variable_calls"] = calls["measured"]
        out["variable_calls_1_page"] = calls.get("warm_up")
    return out


# -- the parent: demo API, subprocesses, summary ---------------------------------------------------


def spawn(
    side: str,
    url: str,
    items: int,
    *,
    variable_ms: float,
    warm_up: bool,
    postgres: str | None = None,
    dataset: str = DATASET,
    cold: bool = False,
) -> dict[str, Any]:
    """``run_side`` in a fresh interpreter; its last stdout line is the JSON result. ``postgres`` goes
    to it in the environment (``POSTGRES_ENV``), never on its command line."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    env = {
        **os.environ,
        "AIRFLOW_CONN_SYNC_DEFAULT": json.dumps({"conn_type": "http", "host": host, "port": int(port)}),
    }
    env.pop(POSTGRES_ENV, None)
    if postgres is not None:
        env[POSTGRES_ENV] = postgres
    with tempfile.TemporaryDirectory(prefix=f"bench_bulk_{side}_") as workdir:
        command = [
            sys.executable, "-m", "bench.bulk", "side", side, "--url", url, "--items", str(items),
            "--workdir", workdir, "--variable-ms", str(variable_ms),
        ]  # fmt: skip
        if warm_up:
            command.append("--warm-up")
        if cold:
            command.append("--cold")
        if dataset != DATASET:
            command += ["--dataset", dataset]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.bulk side {side} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarise(
    timed: dict[str, dict[str, Any]], rss: dict[str, dict[str, Any]], *, items: int, variable_ms: float
) -> dict[str, Any]:
    ours = timed["ours"]
    pages = -(-items // PAGE)
    one_page = ours["variable_calls_1_page"]
    seconds = {side: rounded(timed[side]["seconds"], 2) for side in SIDES}
    peak = {key: rounded(r["peak_rss_mb"], 1) for key, r in rss.items()}
    small, large = (str(size) for size in (RSS_SIZES[0], RSS_SIZES[-1]))
    return {
        "items": items,
        "pages": pages,
        "page_size": PAGE,
        "rows": {side: timed[side]["rows"] for side in SIDES},
        "seconds": seconds,
        "ratio_ours_vs_dlt_alone": rounded(timed["ours"]["seconds"] / timed["dlt_alone"]["seconds"], 2),
        "rows_per_s": {
            side: rounded(timed[side]["rows"] / timed[side]["seconds"], 1) for side in ("ours", "dlt_alone")
        },
        "variable_calls": ours["variable_calls"],
        "variable_calls_per_sync_1_page": one_page,
        "variable_calls_per_page": rounded((ours["variable_calls"] - one_page) / (pages - 1), 3),
        "variable_ms_simulated": variable_ms,
        "variable_seconds_simulated": rounded(ours["variable_calls"] * variable_ms / 1000, 2),
        "peak_rss_mb": peak,
        "peak_rss_items": {key: r["items"] for key, r in rss.items()},
        "peak_rss_ratio": rounded(peak[large] / peak[small], 2),
    }


def run(
    quick: bool = False, variable_ms: float = VARIABLE_MS, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    from airflow_sync_provider.demo.server import DemoServer

    say = progress or (lambda message: print(f"[bench] bulk: {message}", file=sys.stderr, flush=True))
    divisor = QUICK_DIVISOR if quick else 1
    items = ITEMS // divisor
    load_at_start = list(os.getloadavg())
    # clients closing keep-alive connections make the demo log tracebacks: not our measurements
    logging.getLogger("airflow_sync_provider.demo.server").setLevel(logging.CRITICAL)
    timed: dict[str, dict[str, Any]] = {}
    rss: dict[str, dict[str, Any]] = {}
    with DemoServer() as demo:
        for side in SIDES:
            timed[side] = spawn(side, demo.url, items, variable_ms=variable_ms, warm_up=True)
            say(f"{side}: {timed[side]['seconds']:.1f} s for {items:,} items")
        for size in RSS_SIZES:
            rss[str(size)] = spawn("ours", demo.url, size // divisor, variable_ms=0.0, warm_up=False)
            say(f"peak RSS at {size // divisor:,} items: {rss[str(size)]['peak_rss_mb']:.0f} MB")
    out = summarise(timed, rss, items=items, variable_ms=variable_ms)
    out["load_average_at_start"] = load_at_start
    out["load_average_at_end"] = list(os.getloadavg())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    side = sub.add_parser("side", help="one side's sync in this interpreter; prints its JSON result")
    side.add_argument("side", choices=(*SIDES, FETCH_ONLY))
    side.add_argument("--url", required=True)
    side.add_argument("--items", type=int, required=True)
    side.add_argument("--workdir", type=Path, required=True)
    side.add_argument("--variable-ms", type=float, default=VARIABLE_MS)
    side.add_argument("--warm-up", action="store_true")
    side.add_argument("--cold", action="store_true", help="count dlt's import in seconds (no warm-up)")
    side.add_argument("--dataset", default=DATASET)
    args = parser.parse_args(argv)
    result = run_side(
        args.side,
        args.url,
        args.items,
        args.workdir,
        args.variable_ms,
        args.warm_up,
        postgres=os.environ.get(POSTGRES_ENV) or None,  # into PostgreSQL (spawn's postgres=)
        dataset=args.dataset,
        cold=args.cold,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
