"""Per-source sync configuration: frozen dataclasses validated on construction.

Every duration is a ``datetime.timedelta``. A bad value raises ``SyncConfigError`` (a ``ValueError``)
whose message names the field and the value, e.g. ``backoff.jitter_factor must be in [0, 1], got 2``.
``SyncConfig.from_dict`` reads the YAML/dict form (durations as ``500ms``/``30s``/``5m``/``1h``/``1d``)
and rejects unknown keys by name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from airflow_sync_provider.config.checks import duration, int_at_least, require
from airflow_sync_provider.config.durations import parse_duration
from airflow_sync_provider.config.endpoint import EndpointConfig, PaginatorConfig, parse_paginator
from airflow_sync_provider.config.form import expected, optional_section, plain, section_from_dict
from airflow_sync_provider.config.load import (
    IncrementalConfig,
    LoadConfig,
    check_duckdb_dataset,
    check_load_with_incremental,
)
from airflow_sync_provider.config.rate_limit import DEFAULT_MAX_LEARNED_WAIT as DEFAULT_MAX_LEARNED_WAIT
from airflow_sync_provider.config.rate_limit import DEFAULT_SAFETY_MARGIN as DEFAULT_SAFETY_MARGIN
from airflow_sync_provider.config.rate_limit import MAX_LEARNED_WAIT as MAX_LEARNED_WAIT
from airflow_sync_provider.config.rate_limit import MAX_WINDOW_ENTRIES as MAX_WINDOW_ENTRIES
from airflow_sync_provider.config.rate_limit import RateLimitConfig
from airflow_sync_provider.config.resources import ResourceConfig, check_resources, parse_resources
from airflow_sync_provider.config.retry import DEFAULT_MAX_RESET_TIMEOUT as DEFAULT_MAX_RESET_TIMEOUT
from airflow_sync_provider.config.retry import DEFAULT_RESET_MULTIPLIER as DEFAULT_RESET_MULTIPLIER
from airflow_sync_provider.config.retry import JITTER_STRATEGIES as JITTER_STRATEGIES
from airflow_sync_provider.config.retry import BackoffConfig, CircuitBreakerConfig
from airflow_sync_provider.config.schedule import MAX_ASSET_NAME as MAX_ASSET_NAME
from airflow_sync_provider.config.schedule import check_schedule, check_trigger_assets
from airflow_sync_provider.exceptions import SyncConfigError

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
BLOCKED_STATES = ("skipped", "failed")
MAX_REDIRECTS = 20


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """How one source is synced. Every field but ``source`` has a default (see the README's table)."""

    source: str
    endpoint: str = ""
    """Path below the connection's base URL; defaults to ``/<source>``. Never a full URL."""
    schedule: str | timedelta | None = "0 * * * *"
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    timeout: timedelta = timedelta(seconds=30)
    """Per-request timeout (connect and read)."""
    max_retries: int = 3
    """Retries per request for retryable outcomes (5xx, 408, 429, timeout, connection error)."""
    max_wait: timedelta = timedelta(minutes=5)
    """The longest single wait (backoff, Retry-After or window) a sync accepts; longer ends the sync."""
    conn_id: str = "sync_default"
    items_key: str = "items"
    """Where the default handler finds the items when the body is an object (a list body is taken whole)."""
    next_cursor_field: str = "next_cursor"
    cursor_param: str = "cursor"
    max_pages: int = 100
    max_response_bytes: int = 5 * 1024 * 1024
    invalid_response_is_failure: bool = True
    """A 2xx with an unusable body (too large, not JSON, wrong shape) counts as a breaker failure."""
    max_redirects: int = 5
    """Same-origin redirects followed per request, each through its own window slot."""
    max_sync_duration: timedelta = timedelta(minutes=30)
    defer_after: timedelta = timedelta(seconds=5)
    """Waits longer than this defer the task (the worker slot is freed); shorter ones sleep."""
    when_blocked: Literal["skipped", "failed"] = "skipped"
    """Task state when nothing was sent because the breaker is open or the window is full."""
    trigger_assets: tuple[str, ...] = ()
    """Asset names whose events also start a sync (any one of them); with ``schedule`` both apply."""
    review: bool = False
    """Hold the fetched items for an administrator's approval before they are published."""
    review_timeout: timedelta = timedelta(hours=24)
    """How long a review waits for an answer; then the submissions are rejected (nothing is published)."""
    load: LoadConfig | None = None
    """Where the items land (dlt destination, dataset, table); None: the items are only counted."""
    incremental: IncrementalConfig | None = None
    """Send the last bookmark in a request param and fetch only what changed."""
    method: str = "GET"
    """``GET`` or ``POST`` (a read query with a ``json`` body)."""
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Query params of the first page; string values may name run values (``{bookmark}``)."""
    json: Mapping[str, Any] | None = field(default=None, hash=False)
    """The JSON body of a ``POST`` (run values as in ``params``)."""
    paginator: PaginatorConfig | None = None
    """dlt ``rest_api`` paginator (a type name or mapping in YAML); None: ``Link`` header or cursor field."""
    data_selector: str | None = None
    """Dotted path of the items in a page (``data``, ``response.items``); None: ``items_key``."""
    resources: tuple[ResourceConfig, ...] = ()
    """Several endpoints under this source's one window, breaker, quota and pool (``resource_config``);
    empty: the source is one endpoint, synced by its one task ``sync``."""

    def __post_init__(self) -> None:
        require(
            isinstance(self.source, str) and bool(SOURCE_NAME.fullmatch(self.source)),
            "source",
            self.source,
            "must match [a-z][a-z0-9_]{0,62}",
        )
        if self.endpoint == "":
            object.__setattr__(self, "endpoint", f"/{self.source}")
        ok_endpoint = (
            isinstance(self.endpoint, str)
            and self.endpoint.startswith("/")
            and not self.endpoint.startswith("//")
            and "://" not in self.endpoint
            and not any(ch.isspace() for ch in self.endpoint)
        )
        require(ok_endpoint, "endpoint", self.endpoint, "must be a path starting with '/' (not a URL)")
        check_schedule(self.schedule)
        for name, kind in (
            ("rate_limit", RateLimitConfig),
            ("backoff", BackoffConfig),
            ("circuit_breaker", CircuitBreakerConfig),
        ):
            value = getattr(self, name)
            require(isinstance(value, kind), name, value, f"must be a {kind.__name__}")
        duration("timeout", self.timeout)
        int_at_least("max_retries", self.max_retries, 0)
        require(self.max_retries <= 100, "max_retries", self.max_retries, "must be <= 100")
        duration("max_wait", self.max_wait, positive=False)
        require(
            isinstance(self.conn_id, str) and bool(re.fullmatch(r"[\w.\-]{1,250}", self.conn_id)),
            "conn_id",
            self.conn_id,
            "must be an Airflow connection id (letters, digits, _ . -)",
        )
        for name in ("items_key", "next_cursor_field", "cursor_param"):
            value = getattr(self, name)
            require(isinstance(value, str) and value != "", name, value, "must be a non-empty string")
        int_at_least("max_pages", self.max_pages, 1)
        int_at_least("max_response_bytes", self.max_response_bytes, 1024)
        require(
            isinstance(self.invalid_response_is_failure, bool),
            "invalid_response_is_failure",
            self.invalid_response_is_failure,
            "must be true or false",
        )
        int_at_least("max_redirects", self.max_redirects, 0)
        require(
            self.max_redirects <= MAX_REDIRECTS,
            "max_redirects",
            self.max_redirects,
            f"must be <= {MAX_REDIRECTS}",
        )
        duration("max_sync_duration", self.max_sync_duration)
        duration("defer_after", self.defer_after, positive=False)
        require(
            self.when_blocked in BLOCKED_STATES,
            "when_blocked",
            self.when_blocked,
            f"must be one of {', '.join(BLOCKED_STATES)}",
        )
        check_trigger_assets(self)
        require(isinstance(self.review, bool), "review", self.review, "must be true or false")
        duration("review_timeout", self.review_timeout)
        for name, kind in _OPTIONAL_SECTIONS.items():
            value = getattr(self, name)
            require(
                value is None or isinstance(value, kind), name, value, f"must be a {kind.__name__} or None"
            )
        if self.load is not None and self.load.table == "":
            object.__setattr__(self, "load", dataclasses.replace(self.load, table=self.source))
        object.__setattr__(self, "paginator", parse_paginator(self.paginator))
        spec = self.request_spec  # checks method, params, json, paginator and data_selector together
        object.__setattr__(self, "method", spec.method)
        object.__setattr__(self, "params", dict(spec.params))
        check_load_with_incremental(self.load, self.incremental)
        check_duckdb_dataset(self.load, self.source)
        _check_resources(self)

    @property
    def request_spec(self) -> EndpointConfig:
        """How the endpoint is requested and read (``endpoint``, ``method``, ``params``, ...)."""
        return EndpointConfig(
            path=self.endpoint,
            method=self.method,
            params=self.params,
            json=self.json,
            paginator=self.paginator,
            data_selector=self.data_selector,
        )

    @property
    def resource_names(self) -> tuple[str, ...]:
        """The names of the source's resources (empty without ``resources:``)."""
        return tuple(r.name for r in self.resources)

    def resource(self, name: str) -> ResourceConfig:
        """The resource ``name``; ``KeyError`` naming the known ones when there is none."""
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(f"{self.source} has no resource {name!r} (known: {', '.join(self.resource_names)})")

    def for_resource(self, name: str) -> SyncConfig:
        """The config one resource syncs with: the source's (same source, window, breaker, pool and
        Variable) with the resource's endpoint, ``load`` (table defaulting to its name) and
        ``incremental``; fields the resource leaves out keep the source's values."""
        r = self.resource(name)
        ep = r.endpoint
        changes: dict[str, Any] = {"resources": (), "endpoint": ep.path}
        for key in ("method", "params", "json", "paginator", "data_selector"):
            if key in r.given:
                changes[key] = getattr(ep, key)
        try:
            base = dataclasses.replace(self.load, table="") if self.load is not None else None
            load = optional_section(LoadConfig, dict(r.load), base) if r.load is not None else base
            if load is not None and load.table == "":
                load = dataclasses.replace(load, table=name)
            changes["load"] = load
            if r.incremental is not None:
                changes["incremental"] = optional_section(IncrementalConfig, dict(r.incremental), None)
            return dataclasses.replace(self, **changes)
        except SyncConfigError as exc:
            if exc.field.startswith(r.prefix):
                raise
            raise SyncConfigError(f"{r.prefix}{exc.field}", exc.value, expected(exc)) from None

    @property
    def pool(self) -> str:
        """The Airflow pool (1 slot) that serialises every writer of this source's state."""
        return f"sync_{self.source}"

    @property
    def variable_key(self) -> str:
        """The Airflow Variable holding this source's breaker and window state."""
        return f"sync_state_{self.source}"

    def replace(self, **changes: Any) -> SyncConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: SyncConfig | None = None) -> SyncConfig:
        """Build a config from its YAML/dict form, on top of ``base`` when given.

        Nested sections merge key by key; durations may be strings (``30s``) or seconds.
        """
        if not isinstance(data, Mapping):
            raise SyncConfigError("config", data, "must be a mapping")
        changes: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in fields:
                raise SyncConfigError(str(key), value, f"is not a known field (known: {', '.join(fields)})")
            section = _SECTIONS.get(key)
            if key in _OPTIONAL_SECTIONS:
                current = getattr(base, key) if base is not None else None
                changes[key] = optional_section(_OPTIONAL_SECTIONS[key], value, current)
            elif key == "paginator":
                changes[key] = parse_paginator(value)
            elif key == "resources":
                changes[key] = parse_resources(value or ())
            elif section is not None:
                current = getattr(base, key) if base is not None else section()
                changes[key] = section_from_dict(section, value, current)
            elif key in _DURATION_FIELDS or (
                key == "schedule" and isinstance(value, str) and _PATTERN_DURATION.match(value)
            ):
                changes[key] = parse_duration(value, key)
            else:
                changes[key] = value
        if base is not None:
            if "source" in changes and changes["source"] != base.source:
                raise SyncConfigError("source", changes["source"], f"must equal {base.source!r}")
            return dataclasses.replace(base, **changes)
        if "source" not in changes:
            raise SyncConfigError("source", None, "is required")
        return cls(**changes)

    def to_dict(self) -> dict[str, Any]:
        """The YAML/dict form (``from_dict(to_dict())`` round-trips)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL_SECTIONS and value is not None:
                value = {sf.name: plain(getattr(value, sf.name)) for sf in dataclasses.fields(value)}
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            elif f.name in _SECTIONS:
                value = {  # no extra_windows: a single window reads as it always did
                    sf.name: plain(getattr(value, sf.name))
                    for sf in dataclasses.fields(value)
                    if sf.init and (sf.name != "extra_windows" or getattr(value, sf.name))
                }
            elif isinstance(value, PaginatorConfig):
                value = value.to_dict()
            elif f.name == "params":
                value = dict(value)
            elif f.name == "resources":
                out["resources"] = [r.to_dict() for r in value]
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else plain(value)
        return out


_PATTERN_DURATION = re.compile(r"^\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d)\s*$")
_SECTIONS: dict[str, Any] = {
    "rate_limit": RateLimitConfig,
    "backoff": BackoffConfig,
    "circuit_breaker": CircuitBreakerConfig,
}
_OPTIONAL_SECTIONS: dict[str, Any] = {"load": LoadConfig, "incremental": IncrementalConfig}
_DURATION_FIELDS = {"timeout", "max_wait", "max_sync_duration", "defer_after", "review_timeout"}


def _check_resources(config: SyncConfig) -> None:
    """``resources``: parsed, unique, parents known; each one's own config valid (named by its prefix)."""
    value = config.resources
    if isinstance(value, list):
        value = parse_resources(value)
    require(isinstance(value, tuple), "resources", value, "must be a list of resources")
    check_resources(value)
    object.__setattr__(config, "resources", value)
    if value and config.review:
        raise SyncConfigError("review", True, "cannot be combined with resources (review one endpoint)")
    for r in value:
        config.for_resource(r.name)


def _default(source: str, schedule: str, per_hour: int) -> SyncConfig:
    return SyncConfig(
        source=source,
        schedule=schedule,
        rate_limit=RateLimitConfig(max_requests=per_hour, window=timedelta(hours=1)),
    )


DEFAULT_SYNC_CONFIGS: Mapping[str, SyncConfig] = MappingProxyType(
    {
        c.source: c
        for c in (
            _default("airdrops", "0 * * * *", 60),
            _default("airdrops_upcoming", "0 */4 * * *", 15),
            _default("quests", "0 * * * *", 60),
            _default("yield", "0 */2 * * *", 30),
            _default("points", "0 0 * * *", 10),
            _default("sponsored", "*/5 * * * *", 120),
            _default("community", "0 * * * *", 30),
        )
    }
)
"""The seven sources of the original design, keyed by source name (read-only)."""
