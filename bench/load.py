"""Load: rows landed per second for a 20-page sync, ours (limiter + breaker + loader) vs dlt's REST client.

Both read the same 20 pages of the demo API (``/airdrops?limit=6``: 120 items, ``Link: rel="next"``)
and land them with dlt into a fresh DuckDB file, alternating, after one warm-up of each. Ours is the
default handler with ``load:`` on a ``SyncRun`` (state in memory: the Variable cost is measured by
``overhead``); the alternative is ``dlt.sources.helpers.rest_client.RESTClient`` with its header-link
paginator as a ``dlt.resource``. The ratio is ours / dlt's (1.0 = as fast).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.measure import default_sync, median, rounded

PAGES = 20
LIMIT = 6
log = logging.getLogger("bench.load")


def _ours(base_url: str, home: Path, n: int) -> tuple[float, int]:
    from airflow_sync_provider.config import RateLimitConfig, SyncConfig
    from airflow_sync_provider.config.load import LoadConfig
    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
    from airflow_sync_provider.state.store import InMemoryStateStore

    config = SyncConfig(
        source="airdrops",
        endpoint=f"/airdrops?limit={LIMIT}",
        rate_limit=RateLimitConfig(max_requests=1000, window=timedelta(hours=1)),
        load=LoadConfig(path=str(home / f"ours_{n}.duckdb")),
    )
    started = time.perf_counter()
    hook = RateLimitedSyncHook(conn_id="sync_default", store=InMemoryStateStore())
    run, _ = default_sync(hook, config, log)
    elapsed = time.perf_counter() - started
    assert run.checkpoint.pages == PAGES, run.checkpoint.pages
    return elapsed, int(run.checkpoint.load["loaded"])


def _dlt_rest(base_url: str, home: Path, n: int) -> tuple[float, int]:
    import dlt
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

    started = time.perf_counter()
    client = RESTClient(base_url=base_url, paginator=HeaderLinkPaginator(), data_selector="items")
    count = 0

    def airdrops() -> Any:
        nonlocal count
        for page in client.paginate("/airdrops", params={"limit": LIMIT}):
            count += len(page)
            yield page

    workdir = tempfile.mkdtemp(prefix="bench_dlt_")
    pipeline = dlt.pipeline(
        pipeline_name="bench_rest",
        destination=dlt.destinations.duckdb(str(home / f"rest_{n}.duckdb")),
        dataset_name="sync",
        pipelines_dir=workdir,
    )
    pipeline.run(dlt.resource(airdrops(), name="airdrops"))
    return time.perf_counter() - started, count


def run(quick: bool = False) -> dict[str, Any]:
    from airflow_sync_provider.demo.server import DemoServer
    from airflow_sync_provider.load.loader import import_dlt

    import_dlt()  # telemetry and dlt's Airflow config provider off, for both sides
    logging.getLogger("airflow_sync_provider").setLevel(logging.WARNING)
    repetitions = 3 if quick else 5
    ours: list[float] = []
    theirs: list[float] = []
    rows = 0
    with DemoServer() as demo, tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        host, port = demo.url.split("://", 1)[1].split(":")
        conn = {"conn_type": "http", "host": host, "port": int(port)}
        os.environ["AIRFLOW_CONN_SYNC_DEFAULT"] = json.dumps(conn)
        home = Path(tmp)
        for n in range(repetitions + 1):  # n == 0: warm-up of each, not counted
            ours_s, ours_rows = _ours(demo.url, home, n)
            rest_s, rest_rows = _dlt_rest(demo.url, home, n)
            assert ours_rows == rest_rows, (ours_rows, rest_rows)
            rows = ours_rows
            if n:
                ours.append(ours_s)
                theirs.append(rest_s)
    ours_rate = rows / median(ours)
    rest_rate = rows / median(theirs)
    return {
        "pages": PAGES,
        "rows": rows,
        "repetitions": repetitions,
        "ours_s": rounded(median(ours), 3),
        "dlt_rest_s": rounded(median(theirs), 3),
        "ours_rows_per_s": rounded(ours_rate, 1),
        "dlt_rest_rows_per_s": rounded(rest_rate, 1),
        "ratio": rounded(ours_rate / rest_rate, 2),
    }
