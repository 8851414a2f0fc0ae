"""The end of a sync's state: the bookmark settled (it moves only after a committed load), the
result stored for the source (or its resource), the state written back."""

from __future__ import annotations

from typing import Any

from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.load.bookkeeping import kept_for_truncation, settle
from airflow_sync_provider.results import SyncResult
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state import resources as resource_state


def payload(result: SyncResult, resource: str | None) -> dict[str, Any]:
    """The XCom dict of ``result``; a resource's also names the resource (an optional key)."""
    out = result.to_dict()
    if resource is not None:
        out["resource"] = resource
    return out


def settle_run(
    run: SyncRun,
    guard: SourceGuard,
    items: int,
    error: SyncAbort | None,
    *,
    resource: str | None,
    full_refresh: bool,
    log: Any,
) -> SyncResult:
    """The sync's result, with its bookmark settled and both written to the source's state."""
    name = run.config.source if resource is None else f"{run.config.source}.{resource}"
    stored = resource_state.bookmark(guard.state, resource)
    result, bookmark = settle(
        run.config,
        run.checkpoint.load,
        stored,
        full_refresh=full_refresh,
        result=run.result(items=items, error=error),
    )
    if result.success and kept_for_truncation(run.config, result):
        log.warning(
            "%s: stopped at max_pages, so the bookmark stays at %r (the pages not read may hold older "
            "items; set incremental.order: asc if the source returns items in cursor order)",
            run.config.source,
            stored,
        )
    if bookmark != stored:
        if stored is None:
            log.info("%s: first bookmark %r", name, bookmark)
        else:
            log.info("%s: bookmark %r -> %r", name, stored, bookmark)
        guard.state = resource_state.with_bookmark(guard.state, resource, bookmark)
    guard.state = resource_state.with_result(guard.state, resource, payload(result, resource))
    guard.finish(payload(result, resource))
    return result
