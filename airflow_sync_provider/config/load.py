"""Where a sync lands its items (``LoadConfig``) and how it syncs incrementally (``IncrementalConfig``).

Both are optional sections of ``SyncConfig`` (``load:`` and ``incremental:`` in YAML). Validation is
pure: nothing here imports dlt; a missing dlt is reported when a sync first loads (``load.loader``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath
from typing import Any, ClassVar, Literal

from airflow_sync_provider.exceptions import SyncConfigError

DESTINATIONS = ("duckdb", "postgres")
WRITE_DISPOSITIONS = ("append", "merge", "replace")
ORDERS = ("asc",)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONN_ID = re.compile(r"^[\w.\-]{1,250}$")
DEFAULT_DUCKDB_PATH = "sync_data/{source}.duckdb"


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise SyncConfigError(name, value, expected)


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """Land every fetched item in ``destination`` as ``dataset.table`` (through dlt).

    DuckDB: ``path`` is the database file (``{source}`` is replaced by the source; relative paths
    are below ``$AIRFLOW_HOME``); the default, one file per source, lets sources load concurrently.
    PostgreSQL: ``conn_id`` names an Airflow connection (host, login, password, schema = database).
    """

    prefix: ClassVar[str] = "load"
    destination: Literal["duckdb", "postgres"] = "duckdb"
    path: str = DEFAULT_DUCKDB_PATH
    conn_id: str | None = None
    dataset: str = "sync"
    table: str = ""
    """Default: the source's name."""
    primary_key: tuple[str, ...] = ()
    write_disposition: Literal["append", "merge", "replace"] = "append"

    def __post_init__(self) -> None:
        p = self.prefix
        _check(self.destination in DESTINATIONS, f"{p}.destination", self.destination, _one_of(DESTINATIONS))
        _check(
            isinstance(self.path, str) and self.path.strip() != "",
            f"{p}.path",
            self.path,
            "must be a file path",
        )
        if self.destination == "postgres":
            _check(self.conn_id is not None, f"{p}.conn_id", self.conn_id, "is required for postgres")
        if self.conn_id is not None:
            ok = isinstance(self.conn_id, str) and bool(CONN_ID.match(self.conn_id))
            _check(ok, f"{p}.conn_id", self.conn_id, "must be an Airflow connection id")
        for name in ("dataset", "table"):
            value = getattr(self, name)
            ok = isinstance(value, str) and (
                (value == "" and name == "table") or bool(IDENTIFIER.match(value))
            )
            _check(ok, f"{p}.{name}", value, "must match [a-z_][a-z0-9_]{0,62}")
        keys = self.primary_key
        if isinstance(keys, str):
            keys = (keys,)
        _check(
            isinstance(keys, list | tuple) and all(isinstance(k, str) and k for k in keys),
            f"{p}.primary_key",
            self.primary_key,
            "must be a column name or a list of them",
        )
        object.__setattr__(self, "primary_key", tuple(keys))
        wd = self.write_disposition
        _check(wd in WRITE_DISPOSITIONS, f"{p}.write_disposition", wd, _one_of(WRITE_DISPOSITIONS))
        _check(
            wd != "merge" or bool(self.primary_key),
            f"{p}.primary_key",
            list(self.primary_key),
            "is required when write_disposition is merge",
        )

    def target(self, table: str | None = None) -> str:
        """``duckdb sync.airdrops``: where the items go, for logs and the summary line."""
        return f"{self.destination} {self.dataset}.{table or self.table}"


@dataclass(frozen=True, kw_only=True)
class IncrementalConfig:
    """Fetch only what changed: send the bookmark (highest ``cursor_field`` loaded) in ``param``.

    ``lag`` is subtracted from a timestamp bookmark (ISO-8601) or a numeric one (seconds) before it is
    sent, so late writes at the source are fetched again (``merge`` on the primary key dedups them);
    what is sent never goes below ``initial_value``.

    ``order``: ``asc`` declares that the source returns items in ascending ``cursor_field`` order, so a
    sync stopped at ``max_pages`` has seen every item up to its last cursor and may advance the bookmark
    to it. ``None`` (the default, order unknown): a truncated sync keeps the bookmark.
    """

    prefix: ClassVar[str] = "incremental"
    cursor_field: str
    param: str
    initial_value: str | int | float | None = None
    lag: timedelta = timedelta(0)
    order: Literal["asc"] | None = None

    def __post_init__(self) -> None:
        p = self.prefix
        for name in ("cursor_field", "param"):
            value = getattr(self, name)
            _check(
                isinstance(value, str) and value.strip() == value != "",
                f"{p}.{name}",
                value,
                "must be a name",
            )
        iv = self.initial_value
        _check(
            iv is None or (isinstance(iv, str | int | float) and not isinstance(iv, bool)),
            f"{p}.initial_value",
            iv,
            "must be a string, a number or null",
        )
        ok = isinstance(self.lag, timedelta) and self.lag >= timedelta(0)
        _check(ok, f"{p}.lag", self.lag, "must be a timedelta >= 0")
        order = self.order
        _check(order is None or order in ORDERS, f"{p}.order", order, "must be asc or null (order unknown)")


def check_load_with_incremental(load: LoadConfig | None, incremental: IncrementalConfig | None) -> None:
    """Refuse ``load.write_disposition: replace`` with ``incremental``: each run would replace the whole
    table with only the items changed since the bookmark."""
    if load is not None and incremental is not None and load.write_disposition == "replace":
        raise SyncConfigError(
            "load.write_disposition",
            "replace",
            "cannot be combined with incremental (a run fetches only what changed since the bookmark, "
            "so replace would leave only those items in the table): use merge or append, or remove "
            "incremental",
        )


def check_duckdb_dataset(load: LoadConfig | None, source: str) -> None:
    """Refuse a DuckDB ``dataset`` named like its database file (``dataset: github`` in
    ``sync_data/github.duckdb``): DuckDB cannot then tell the schema from the database, and dlt's schema
    updates fail with "Ambiguous reference to catalog or schema" once a second table is created."""
    if load is None or load.destination != "duckdb":
        return
    path = load.path.replace("{source}", source)
    if PurePath(path).stem == load.dataset:
        raise SyncConfigError(
            "load.dataset",
            load.dataset,
            f"is also the name of the DuckDB file ({path}): DuckDB cannot tell the schema from the "
            "database; name the dataset otherwise (the default is sync)",
        )


def _one_of(options: tuple[str, ...]) -> str:
    return f"must be one of {', '.join(options)}"
