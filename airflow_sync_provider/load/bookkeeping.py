"""After a sync: the bookmark to store and the result's load fields (pure, no dlt)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.load.incremental import Cursor, later
from airflow_sync_provider.results import SyncResult


def settle(
    config: SyncConfig,
    progress: Mapping[str, Any],
    stored: Cursor | None,
    *,
    full_refresh: bool,
    result: SyncResult,
) -> tuple[SyncResult, Cursor | None]:
    """The result with ``items_loaded``/``destination``/``bookmark``, and the bookmark to store.

    The bookmark moves only when the sync succeeded, i.e. after every load of it committed; a full
    refresh sets it to the highest cursor it saw (or keeps it when it saw none). A sync stopped at
    ``max_pages`` (``truncated``) keeps it, since the pages it did not read may hold items below what it
    saw, unless the source declares ``incremental.order: asc`` (then everything up to its last cursor
    was read).
    """
    bookmark = stored
    if config.incremental is not None and result.success and not kept_for_truncation(config, result):
        seen = progress.get("cursor_max")
        bookmark = (seen if seen is not None else stored) if full_refresh else later(stored, seen)
    return (
        dataclasses.replace(
            result,
            items_loaded=int(progress.get("loaded", 0)),
            destination=config.load.target() if config.load is not None else None,
            bookmark=bookmark if config.incremental is not None else None,
        ),
        bookmark,
    )


def kept_for_truncation(config: SyncConfig, result: SyncResult) -> bool:
    """Whether a truncated sync keeps the bookmark: the source's order is unknown (not ``asc``)."""
    inc = config.incremental
    return inc is not None and result.truncated and inc.order != "asc"
