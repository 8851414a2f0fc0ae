"""``Loader``: land items through a dlt pipeline; a load counts once ``pipeline.load()`` has returned.

The items are a generator over our guarded pages, so every request still passes the window and the
breaker. A wait that defers the sync (or an abort) ends the generator early: the pages fetched so far
are committed first, then the wait/abort goes on, so a resumed sync continues after pages that are
already committed. dlt gets the items in lists of up to ``BATCH_ITEMS`` (one extract step per list,
not per item), and lands them in load files of at most ``FILE_MAX_ITEMS`` rows, ``LOAD_WORKERS`` at a
time, so a sync's memory does not grow with its number of items.

``append``/``merge`` commit into the table itself. ``replace`` never swaps the table for a partial
fetch: its items are staged (as JSON text, in the same table name of the dataset ``<dataset>_pending``)
and ``publish`` swaps them in, in one destination transaction (dlt's ``insert-from-staging``), only
when the whole sync succeeded and was not truncated. A sync that aborts, times out or is killed leaves
the table as it was; staged pages survive a deferral, so the resumed sync does not fetch them again.

Progress lives in ``Checkpoint.load``: ``loaded`` (items committed to their tables), ``cursor_max``
(highest incremental cursor committed), ``staged`` (``replace`` tables: items staged, primary key)
and ``replaced`` (tables swapped in by this sync).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncProviderError, SyncWaitRequired
from airflow_sync_provider.load.incremental import Cursor, highest, later

EXTRA_HINT = "pip install 'airflow-sync-provider[load]'"
BATCH_ITEMS = 1000
"""Items handed to dlt's extract per step: a list, not one pipe step per item."""
FILE_MAX_ITEMS_ENV = "NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS"
FILE_MAX_ITEMS = 1000
"""Rows per dlt load file (``FILE_MAX_ITEMS_ENV`` overrides): the destination parses
``LOAD_WORKERS`` bounded ``INSERT ... VALUES`` files at a time, so memory stays flat in the number of
items (one file of a whole sync grew DuckDB's memory by ~20 KB per item)."""
LOAD_WORKERS = 2
"""Load files loaded at once. dlt's default, 20, holds 20 files' statements in memory at once; with one,
dlt loads each file in the calling thread, opening and closing the destination per file: 1.5x slower
than two threads in the bulk benchmark (bench/README.md)."""
QUIET_DLT = {"RUNTIME__DLTHUB_TELEMETRY": "false", "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false"}
"""dlt's anonymous telemetry off, and its Airflow config provider (which would read an Airflow Variable
per dlt setting through the Execution API): our destinations come from the sync's config."""
PENDING_SUFFIX = "_pending"
"""Dataset suffix of the staged ``replace`` items (not ``_staging``: dlt uses that one itself)."""


class SyncLoadError(SyncProviderError):
    """Loading into the destination failed (or dlt is missing); the sync fails, the bookmark stays."""


def import_dlt() -> Any:
    """dlt set up for our loads (``QUIET_DLT``, files of ``FILE_MAX_ITEMS`` rows); a clear error naming
    the extra when it is missing. A setting already in the environment wins."""
    for name, value in QUIET_DLT.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault(FILE_MAX_ITEMS_ENV, str(FILE_MAX_ITEMS))
    try:
        import dlt
    except ImportError as exc:
        raise SyncLoadError(
            f"load.destination is set but dlt is not installed: {EXTRA_HINT} (extra 'load')"
        ) from exc
    return dlt


class _Feed:
    """Hand ``items`` to dlt in lists of up to ``BATCH_ITEMS``; count them and track the cursor.

    A wait/abort raised while fetching ends the feed quietly (remembered in ``stopped``) after the
    batch in hand is handed over, so every item fetched before a deferral is committed.
    """

    def __init__(self, items: Iterable[Any], cursor_field: str | None, batch: int = BATCH_ITEMS) -> None:
        self._items = items
        self._cursor_field = cursor_field
        self._batch = batch
        self.count = 0
        self.cursor_max: Cursor | None = None
        self.stopped: SyncWaitRequired | SyncAbort | None = None

    def _taken(self, batch: list[Any]) -> list[Any]:
        self.count += len(batch)
        if self._cursor_field is not None:
            self.cursor_max = highest(batch, self._cursor_field, self.cursor_max)
        return batch

    def __iter__(self) -> Iterator[list[Any]]:
        batch: list[Any] = []
        try:
            for item in self._items:
                batch.append(item)
                if len(batch) >= self._batch:
                    yield self._taken(batch)
                    batch = []
        except (SyncWaitRequired, SyncAbort) as stop:
            self.stopped = stop
        if batch:
            yield self._taken(batch)

    def rows(self, row: Any) -> Iterator[list[Any]]:
        """The batches with ``row`` applied to each item (``replace``'s staged form)."""
        for batch in self:
            yield [row(item) for item in batch]


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


class Loader:
    """One sync's dlt pipelines (working files in a temporary directory, removed by ``close``)."""

    def __init__(self, config: SyncConfig, progress: dict[str, Any], log: Any) -> None:
        if config.load is None:
            raise SyncLoadError(f"{config.source}: no load configured (set load.destination)")
        self.config = config
        self.settings = config.load
        self.progress = progress
        self.log = log
        self._dlt = import_dlt()
        self._workdir = tempfile.mkdtemp(prefix=f"sync_{config.source}_dlt_")
        self.pipeline = self._pipeline(self.settings.dataset)
        self._pending: Any = None

    def _pipeline(self, dataset: str, suffix: str = "") -> Any:
        from airflow_sync_provider.load.destination import make_destination

        return self._dlt.pipeline(
            pipeline_name=f"sync_{self.config.source}{suffix}",
            destination=make_destination(self.settings, self.config.source),
            dataset_name=dataset,
            pipelines_dir=self._workdir,
        )

    @property
    def pending(self) -> Any:
        """The pipeline of the staged ``replace`` items (dataset ``<dataset>_pending``)."""
        if self._pending is None:
            self._pending = self._pipeline(self.settings.dataset + PENDING_SUFFIX, PENDING_SUFFIX)
        return self._pending

    def load(
        self,
        items: Iterable[Any],
        *,
        table: str | None = None,
        write_disposition: str | None = None,
        primary_key: str | Sequence[str] | None = None,
    ) -> int:
        """Load ``items`` into ``dataset.table``; return how many were committed (``replace``: staged)."""
        cfg, progress = self.settings, self.progress
        table = table or cfg.table
        disposition = write_disposition or cfg.write_disposition
        keys = primary_key if primary_key is not None else (cfg.primary_key if table == cfg.table else ())
        keys = [keys] if isinstance(keys, str) else list(keys)
        inc = self.config.incremental
        tracked = inc is not None and table == cfg.table
        if disposition == "replace":
            if tracked:
                raise SyncLoadError(
                    f"write_disposition replace on {cfg.target(table)} cannot be combined with incremental "
                    "(the table would hold only the items changed since the bookmark)"
                )
            return self._stage(items, table, keys)
        feed = _Feed(items, inc.cursor_field if tracked and inc is not None else None)
        resource = self._dlt.resource(
            iter(feed), name=table, write_disposition=disposition, primary_key=keys or None
        )
        committed = self._commit(self.pipeline, resource, feed, cfg.target(table), skip=False)
        if committed:
            progress["loaded"] = progress.get("loaded", 0) + committed
            progress["cursor_max"] = later(progress.get("cursor_max"), feed.cursor_max)
            self.log.info("Loaded %d items into %s", committed, cfg.target(table))
        if feed.stopped is not None:
            raise feed.stopped
        return committed

    def _stage(self, items: Iterable[Any], table: str, keys: list[str]) -> int:
        """``replace``: commit the items to the pending table (the sync's first batch replaces it)."""
        from dlt.common.json import json

        staged: dict[str, Any] = self.progress.setdefault("staged", {})
        feed = _Feed(items, None)
        order = itertools.count(self.progress.get("staged_seq", 0))
        rows = feed.rows(lambda item: {"item": json.typed_dumps(item), "seq": next(order)})
        resource = self._dlt.resource(
            rows,
            name=table,
            write_disposition="append" if table in staged else "replace",
            columns={"item": {"data_type": "text"}, "seq": {"data_type": "bigint"}},
        )
        target = f"{self.settings.target(table)} (staged in {self.settings.dataset}{PENDING_SUFFIX})"
        committed = self._commit(self.pending, resource, feed, target, skip=True)
        self.progress["staged_seq"] = next(order)
        if committed:
            entry = staged.setdefault(table, {"items": 0, "primary_key": keys})
            entry["items"] += committed
            self.log.info(
                "Staged %d items for %s: swapped in only when the whole sync succeeds",
                committed,
                self.settings.target(table),
            )
        if feed.stopped is not None:
            raise feed.stopped
        return committed

    def _commit(self, pipeline: Any, resource: Any, feed: _Feed, target: str, *, skip: bool) -> int:
        """Extract ``resource`` and load it, unless it is empty or (with ``skip``) an abort stopped it."""
        drop = False
        try:
            pipeline.extract(resource)
            drop = feed.count == 0 or (skip and isinstance(feed.stopped, SyncAbort))
            if drop:
                pipeline.abort_packages()
            else:
                pipeline.normalize()
                info = pipeline.load(workers=LOAD_WORKERS)
                if info.has_failed_jobs:
                    raise SyncLoadError(f"loading into {target} failed: {info.load_packages}")
        except SyncLoadError:
            raise
        except Exception as exc:
            cause = _root_cause(exc)
            if isinstance(cause, SyncWaitRequired | SyncAbort):
                raise cause from None
            raise SyncLoadError(f"loading into {target} failed: {type(cause).__name__}: {cause}") from exc
        return 0 if drop else feed.count

    def publish(self, *, truncated: bool) -> int:
        """Swap every staged ``replace`` table in (one transaction each); return the items swapped in.

        Called once the handler succeeded. A truncated sync (``max_pages``) swaps nothing: the table
        keeps its last complete snapshot.
        """
        staged: dict[str, Any] = self.progress.get("staged") or {}
        if not staged:
            return 0
        if truncated:
            self.log.warning(
                "%s: stopped at max_pages, so %s keep their last complete snapshot (replace never swaps "
                "a table for a partial fetch)",
                self.config.source,
                ", ".join(self.settings.target(t) for t in sorted(staged)),
            )
            return 0
        total = 0
        for table in sorted(staged):
            entry = staged[table]
            feed = _Feed(self._staged_items(table, entry["primary_key"]), None)
            resource = self._dlt.resource(
                iter(feed), name=table, write_disposition="replace", primary_key=entry["primary_key"] or None
            )
            target = self.settings.target(table)
            swapped = self._commit(self.pipeline, resource, feed, target, skip=False)
            del staged[table]
            self.progress["loaded"] = self.progress.get("loaded", 0) + swapped
            self.progress["replaced"] = sorted({*self.progress.get("replaced", []), table})
            self.log.info("Replaced %s with the %d items of this sync", target, swapped)
            self._clear_staged(table)
            total += swapped
        return total

    def _staged_items(self, table: str, keys: Sequence[str]) -> Iterator[Any]:
        """The staged items, newest first; with a primary key, only the newest copy of each item.

        An item can be staged twice in one sync: a page delivered again after a deferral, or an item
        that moved to a later page while the sync waited (a source sorted by update time). The table
        must hold it once, as last fetched. The keys seen are kept in memory (not the items)."""
        from dlt.common.json import json

        seen: set[tuple[str, ...]] = set()
        dropped = 0
        with self.pending.sql_client() as client:
            name = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT item FROM {name} ORDER BY seq DESC NULLS LAST") as cursor:
                while rows := cursor.fetchmany(1000):
                    for (raw,) in rows:
                        item = json.typed_loads(raw)
                        if keys and isinstance(item, dict):
                            key = tuple(repr(item.get(k)) for k in keys)
                            if key in seen:
                                dropped += 1
                                continue
                            seen.add(key)
                        yield item
        if dropped:
            self.log.info(
                "%s: %d items were fetched twice in this sync (a page delivered again, or an item that "
                "moved to a later page); the latest copy of each is kept",
                self.settings.target(table),
                dropped,
            )

    def _clear_staged(self, table: str) -> None:
        """Empty the pending table (best effort: the next ``replace`` sync replaces it anyway)."""
        try:
            with self.pending.sql_client() as client:
                client.execute_sql(f"DELETE FROM {client.make_qualified_table_name(table)}")
        except Exception as exc:
            self.log.warning("Could not empty the staged items of %s: %s", table, exc)

    def close(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)
