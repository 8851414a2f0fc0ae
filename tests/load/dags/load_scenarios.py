"""Shipped-style sync DAGs that land their items (tests/load): built by ``build_sync_dags`` from YAML.

- ``sync_landed_airdrops``: the demo's ``/airdrops`` (120 items, 3 pages), incremental on ``updated_at``,
  merged into DuckDB ``$AIRFLOW_HOME/load_tests/landed_airdrops.duckdb``.
- ``sync_crashing_quests``: the same for ``/quests``; with ``SYNC_TEST_CRASH_AT_COMMIT=1`` the task
  process dies (``os._exit``) after dlt wrote the rows and before the load is committed.
- ``sync_truncated_airdrops``: ``/airdrops`` incremental like ``landed_airdrops``, order unknown (run
  with ``max_pages``).
- ``sync_replaced_quests``: ``/quests`` (80 items, 2 pages) with ``write_disposition: replace``; one
  request per 8 s, so every sync defers between its two pages. With ``SYNC_TEST_REPORT_TABLE=1`` the
  resumed sync first prints the rows its table holds, i.e. what a reader saw during the wait (a reader
  in another process would lock the DuckDB file against the sync).
"""

import os
from typing import Any

import yaml

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.sources_file import configs_from_mapping

SOURCES = yaml.safe_load("""
include_defaults: false
load: {destination: duckdb, path: "load_tests/{source}.duckdb", primary_key: id, write_disposition: merge}
sources:
  landed_airdrops:
    endpoint: /airdrops
    incremental: {cursor_field: updated_at, param: updated_since}
  crashing_quests:
    endpoint: /quests
    incremental: {cursor_field: updated_at, param: updated_since}
  truncated_airdrops:
    endpoint: /airdrops
    incremental: {cursor_field: updated_at, param: updated_since}
  replaced_quests:
    endpoint: /quests
    load: {write_disposition: replace, primary_key: []}
    rate_limit: {max_requests: 1, window: 8s}
    defer_after: 2s
""")
CONFIGS = configs_from_mapping(SOURCES)


def crash_at_commit(ctx: SyncContext) -> Any:
    """The default handler; when asked, die where dlt marks the load complete (``_dlt_loads``)."""
    if os.environ.get("SYNC_TEST_CRASH_AT_COMMIT") == "1":
        from dlt.destinations.job_client_impl import SqlJobClientBase

        def die(self: Any, load_id: str) -> None:
            print("CRASHING before the load commits", flush=True)
            os._exit(9)

        SqlJobClientBase.complete_load = die  # type: ignore[method-assign]
    return default_handler(ctx)


def report_table_on_resume(ctx: SyncContext) -> Any:
    """The default handler; when asked, a resumed sync first prints how many rows its table holds."""
    if ctx.checkpoint.deferrals and os.environ.get("SYNC_TEST_REPORT_TABLE") == "1":
        import duckdb

        from airflow_sync_provider.load.destination import duckdb_path

        load = ctx.config.load
        assert load is not None
        with duckdb.connect(str(duckdb_path(load, ctx.source))) as con:
            found = con.execute(f"select count(*) from {load.dataset}.{load.table}").fetchone()
        print(f"TABLE DURING THE WAIT: {found[0] if found else None} rows", flush=True)
    return default_handler(ctx)


globals().update(build_sync_dags({"landed_airdrops": CONFIGS["landed_airdrops"]}))
globals().update(build_sync_dags({"truncated_airdrops": CONFIGS["truncated_airdrops"]}))
globals().update(
    build_sync_dags({"replaced_quests": CONFIGS["replaced_quests"]}, handler=report_table_on_resume)
)
globals().update(build_sync_dags({"crashing_quests": CONFIGS["crashing_quests"]}, handler=crash_at_commit))
