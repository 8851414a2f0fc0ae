"""``Loader``: land items through a dlt pipeline; a load counts once ``pipeline.load()`` has returned.

The items are a generator over our guarded pages, so every request still passes the window and the
breaker. A wait that defers the sync (or an abort) ends the generator early: the pages fetched so far
are loaded first (an abort under ``replace`` loads nothing), then the wait/abort goes on, so a resumed
sync continues after pages that are already committed. Progress lives in ``Checkpoint.load``:
``loaded`` (items committed), ``cursor_max`` (highest incremental cursor committed) and ``replaced``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncProviderError, SyncWaitRequired
from airflow_sync_provider.load.incremental import Cursor, highest, later

EXTRA_HINT = "pip install 'airflow-sync-provider[load]'"


class SyncLoadError(SyncProviderError):
    """Loading into the destination failed (or dlt is missing); the sync fails, the bookmark stays."""


def import_dlt() -> Any:
    """dlt, with its anonymous telemetry off; a clear error naming the extra when it is missing.

    dlt's Airflow config provider is turned off too: it would read an Airflow Variable for every dlt
    setting (through the Execution API); our destinations come from the sync's config and connection.
    """
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    try:
        import dlt
    except ImportError as exc:
        raise SyncLoadError(
            f"load.destination is set but dlt is not installed: {EXTRA_HINT} (extra 'load')"
        ) from exc
    return dlt


class _Feed:
    """Iterate ``items`` for dlt; stop quietly at a wait/abort and remember it; count and track the cursor."""

    def __init__(self, items: Iterable[Any], cursor_field: str | None) -> None:
        self._items = items
        self._cursor_field = cursor_field
        self.count = 0
        self.cursor_max: Cursor | None = None
        self.stopped: SyncWaitRequired | SyncAbort | None = None

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self._items:
                self.count += 1
                if self._cursor_field is not None:
                    self.cursor_max = highest((item,), self._cursor_field, self.cursor_max)
                yield item
        except (SyncWaitRequired, SyncAbort) as stop:
            self.stopped = stop


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


class Loader:
    """One sync's dlt pipeline (working files in a temporary directory, removed by ``close``)."""

    def __init__(self, config: SyncConfig, progress: dict[str, Any], log: Any) -> None:
        if config.load is None:
            raise SyncLoadError(f"{config.source}: no load configured (set load.destination)")
        self.config = config
        self.settings = config.load
        self.progress = progress
        self.log = log
        self._dlt = import_dlt()
        from airflow_sync_provider.load.destination import make_destination

        self._workdir = tempfile.mkdtemp(prefix=f"sync_{config.source}_dlt_")
        self.pipeline = self._dlt.pipeline(
            pipeline_name=f"sync_{config.source}",
            destination=make_destination(self.settings, config.source),
            dataset_name=self.settings.dataset,
            pipelines_dir=self._workdir,
        )

    def load(
        self,
        items: Iterable[Any],
        *,
        table: str | None = None,
        write_disposition: str | None = None,
        primary_key: str | Sequence[str] | None = None,
    ) -> int:
        """Load ``items`` into ``dataset.table``; return how many were committed."""
        cfg, progress = self.settings, self.progress
        table = table or cfg.table
        disposition = write_disposition or cfg.write_disposition
        if disposition == "replace" and table in progress.get("replaced", []):
            disposition = "append"  # a resumed sync adds to the table it already replaced
        keys = primary_key if primary_key is not None else (cfg.primary_key if table == cfg.table else ())
        inc = self.config.incremental
        feed = _Feed(items, inc.cursor_field if inc is not None and table == cfg.table else None)
        resource = self._dlt.resource(
            iter(feed), name=table, write_disposition=disposition, primary_key=list(keys) or None
        )
        target = cfg.target(table)
        skip = False
        try:
            self.pipeline.extract(resource)
            skip = feed.count == 0 or (isinstance(feed.stopped, SyncAbort) and disposition == "replace")
            if skip:
                self.pipeline.abort_packages()
            else:
                self.pipeline.normalize()
                info = self.pipeline.load()
                if info.has_failed_jobs:
                    raise SyncLoadError(f"loading into {target} failed: {info.load_packages}")
        except SyncLoadError:
            raise
        except Exception as exc:
            cause = _root_cause(exc)
            if isinstance(cause, SyncWaitRequired | SyncAbort):
                raise cause from None
            raise SyncLoadError(f"loading into {target} failed: {type(cause).__name__}: {cause}") from exc
        committed = 0 if skip else feed.count
        if committed:
            progress["loaded"] = progress.get("loaded", 0) + committed
            progress["cursor_max"] = later(progress.get("cursor_max"), feed.cursor_max)
            if disposition == "replace":
                progress["replaced"] = sorted({*progress.get("replaced", []), table})
            self.log.info("Loaded %d items into %s", committed, target)
        if feed.stopped is not None:
            raise feed.stopped
        return committed

    def close(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)
