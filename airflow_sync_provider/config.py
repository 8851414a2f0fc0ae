"""Per-source sync configuration: frozen dataclasses validated on construction.

Every duration is a ``datetime.timedelta``. A bad value raises ``SyncConfigError`` (a ``ValueError``)
whose message names the field and the value, e.g. ``backoff.jitter_factor must be in [0, 1], got 2``.
``SyncConfig.from_dict`` reads the YAML/dict form (durations as ``500ms``/``30s``/``5m``/``1h``/``1d``)
and rejects unknown keys by name.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from airflow_sync_provider import adaptive_config, window_limits
from airflow_sync_provider.durations import format_duration, parse_duration
from airflow_sync_provider.endpoint_config import EndpointConfig, PaginatorConfig, parse_paginator
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.load_config import IncrementalConfig, LoadConfig, check_load_with_incremental
from airflow_sync_provider.policy.quota import RESET_FORMS
from airflow_sync_provider.resource_config import ResourceConfig, check_resources, parse_resources
from airflow_sync_provider.window_limits import WindowLimit

MAX_WINDOW_ENTRIES = 10_000
DEFAULT_SAFETY_MARGIN = timedelta(seconds=1)
"""``rate_limit.safety_margin`` when unset (capped at a tenth of the window)."""
MAX_REDIRECTS = 20
DEFAULT_MAX_LEARNED_WAIT = timedelta(hours=1)
"""``rate_limit.max_learned_wait`` when unset: the larger of this and the window."""
MAX_LEARNED_WAIT = timedelta(days=366)
"""The longest ``max_learned_wait`` accepted (a reset further away is clamped to it anyway)."""
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
JITTER_STRATEGIES = ("proportional", "full", "decorrelated")
BLOCKED_STATES = ("skipped", "failed")

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_]{0,99}")
_CRON_NAMES = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|MON|TUE|WED|THU|FRI|SAT|SUN"
_CRON_FIELD = re.compile(rf"^(?:[\d*/,\-?#]|L|W|{_CRON_NAMES})+$", re.IGNORECASE)
MAX_ASSET_NAME = 1500
DEFAULT_RESET_MULTIPLIER = 2.0
"""``circuit_breaker.reset_multiplier`` default: the open wait doubles after each failed probe."""
DEFAULT_MAX_RESET_TIMEOUT = timedelta(minutes=50)
"""The open wait's cap when ``circuit_breaker.max_reset_timeout`` is not set: just under an hour, so
an hourly source still probes at every run (bench/README.md, outage, has the measurements)."""
_CRON_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise SyncConfigError(name, value, expected)


def _int_at_least(name: str, value: Any, minimum: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    _require(ok, name, value, f"must be an integer >= {minimum}")


def _number_in(name: str, value: Any, low: float, high: float, text: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    _require(ok and low <= value <= high, name, value, f"must be {text}")


_ZERO = timedelta(0)


def _duration(name: str, value: Any, *, positive: bool = True) -> None:
    ok = isinstance(value, timedelta) and (value > _ZERO if positive else value >= _ZERO)
    _require(ok, name, value, "must be a positive timedelta" if positive else "must be a timedelta >= 0")


@dataclass(frozen=True, kw_only=True)
class RateLimitConfig:
    """Sliding-window limit: never more than ``max_requests`` requests in any ``window``."""

    prefix: ClassVar[str] = "rate_limit"
    max_requests: int = 60
    window: timedelta = timedelta(hours=1)
    safety_margin: timedelta | None = None
    """How long a slot is held past ``window`` after its response arrived, for the time a request
    takes to reach the API; ``None``: ``DEFAULT_SAFETY_MARGIN``, at most a tenth of the window."""

    @property
    def margin(self) -> timedelta:
        """The safety margin in effect."""
        if self.safety_margin is not None:
            return self.safety_margin
        return min(DEFAULT_SAFETY_MARGIN, self.window / 10)

    learn_from_headers: bool = True
    """Obey the quota the API reports (``RateLimit-*``, ``X-RateLimit-*``, ``Retry-After``)."""
    remaining_header: str | None = None
    """An API's own name for the remaining count (e.g. ``x-app-ratelimit-remaining``)."""
    reset_header: str | None = None
    """An API's own name for the reset time; read as ``reset_is`` says."""
    reset_is: Literal["seconds", "epoch", "auto"] = "auto"
    max_learned_wait: timedelta | None = None
    """How long a learned quota is trusted at most after it was learned (then one request goes out to
    find out); ``None``: the larger of ``window`` and ``DEFAULT_MAX_LEARNED_WAIT``."""

    @property
    def learned_wait_cap(self) -> timedelta:
        """The ``max_learned_wait`` in effect."""
        if self.max_learned_wait is not None:
            return self.max_learned_wait
        return max(self.window, DEFAULT_MAX_LEARNED_WAIT)

    adaptive: bool = False
    """Learn a hidden limit: refusals without a usable quota lower the effective limit, sustained
    success raises it (``policy.adaptive``). Accepted and validated; admission uses it from the next
    release."""
    min_requests: int = adaptive_config.DEFAULT_MIN_REQUESTS
    """The adaptive floor: the effective limit never goes below it (nor above ``max_requests``)."""
    adaptive_decrease: float = adaptive_config.DEFAULT_DECREASE
    """The factor a refusal multiplies the effective limit by, in [0.1, 0.95]."""
    extra_windows: tuple[WindowLimit, ...] = ()
    """Longer windows obeyed as well (``window_limits``; the list form of ``rate_limit`` fills it)."""
    advertised_window: timedelta | None = None
    """The window a bare ``X-RateLimit-Limit``/``RateLimit-Limit`` counts over, when the API documents it
    but its headers do not say (GitHub: an hour); with it, that limit binds as a learned window."""

    def __post_init__(self) -> None:
        _int_at_least(f"{self.prefix}.max_requests", self.max_requests, 1)
        # the window log is stored in a Variable and read back at most MAX_WINDOW_ENTRIES long
        _require(
            self.max_requests <= MAX_WINDOW_ENTRIES,
            f"{self.prefix}.max_requests",
            self.max_requests,
            f"must be <= {MAX_WINDOW_ENTRIES}",
        )
        _duration(f"{self.prefix}.window", self.window)
        if self.safety_margin is not None:
            _duration(f"{self.prefix}.safety_margin", self.safety_margin, positive=False)
            _require(
                self.safety_margin < self.window,
                f"{self.prefix}.safety_margin",
                self.safety_margin,
                f"must be shorter than rate_limit.window ({self.window})",
            )
        _require(
            isinstance(self.learn_from_headers, bool),
            f"{self.prefix}.learn_from_headers",
            self.learn_from_headers,
            "must be true or false",
        )
        for name in ("remaining_header", "reset_header"):
            value = getattr(self, name)
            ok = value is None or (isinstance(value, str) and bool(_HEADER_NAME.fullmatch(value)))
            _require(ok, f"{self.prefix}.{name}", value, "must be an HTTP header name (letters, digits, -)")
        _require(
            self.reset_header is None or self.remaining_header is not None,
            f"{self.prefix}.reset_header",
            self.reset_header,
            "needs rate_limit.remaining_header too",
        )
        _require(
            self.reset_is in RESET_FORMS,
            f"{self.prefix}.reset_is",
            self.reset_is,
            f"must be one of {', '.join(RESET_FORMS)}",
        )
        if self.max_learned_wait is not None:
            _duration(f"{self.prefix}.max_learned_wait", self.max_learned_wait)
            _require(
                self.max_learned_wait <= MAX_LEARNED_WAIT,
                f"{self.prefix}.max_learned_wait",
                self.max_learned_wait,
                f"must be at most {format_duration(MAX_LEARNED_WAIT)}",
            )
        adaptive_config.check(self)
        self._check_extra_windows()
        window_limits.check_advertised_window(self.advertised_window, f"{self.prefix}.advertised_window")

    def _check_extra_windows(self) -> None:
        name = f"{self.prefix}.extra_windows"
        extra = self.extra_windows
        if isinstance(extra, list):
            extra = tuple(extra)
            object.__setattr__(self, "extra_windows", extra)
        _require(isinstance(extra, tuple), name, extra, "must be a list of windows")
        _require(
            len(extra) <= window_limits.MAX_EXTRA_WINDOWS,
            name,
            extra,
            f"must hold at most {window_limits.MAX_EXTRA_WINDOWS} windows",
        )
        parsed = tuple(window_limits.parse(w, f"{name}[{i}]") for i, w in enumerate(extra))
        object.__setattr__(self, "extra_windows", parsed)
        for i, w in enumerate(parsed):
            _require(
                w.window > self.window,
                f"{name}[{i}].window",
                format_duration(w.window) if isinstance(w.window, timedelta) else w.window,
                f"must be longer than {self.prefix}.window ({format_duration(self.window)})",
            )
        window_limits.check(
            [(self.prefix, self.max_requests, self.window)]
            + [(f"{name}[{i}]", w.max_requests, w.window) for i, w in enumerate(parsed)]
        )


@dataclass(frozen=True, kw_only=True)
class BackoffConfig:
    """Retry waits: ``min(initial_delay * multiplier**n, max_delay)`` with jitter (see ``policy.backoff``)."""

    prefix: ClassVar[str] = "backoff"
    initial_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)
    multiplier: float = 2.0
    jitter_factor: float = 0.1
    strategy: Literal["proportional", "full", "decorrelated"] = "proportional"

    def __post_init__(self) -> None:
        _duration(f"{self.prefix}.initial_delay", self.initial_delay, positive=False)
        _duration(f"{self.prefix}.max_delay", self.max_delay, positive=False)
        _require(
            self.max_delay >= self.initial_delay,
            f"{self.prefix}.max_delay",
            self.max_delay,
            f"must be >= backoff.initial_delay ({self.initial_delay})",
        )
        _number_in(f"{self.prefix}.multiplier", self.multiplier, 1, 100, "in [1, 100]")
        _number_in(f"{self.prefix}.jitter_factor", self.jitter_factor, 0, 1, "in [0, 1]")
        _require(
            self.strategy in JITTER_STRATEGIES,
            f"{self.prefix}.strategy",
            self.strategy,
            f"must be one of {', '.join(JITTER_STRATEGIES)}",
        )


@dataclass(frozen=True, kw_only=True)
class CircuitBreakerConfig:
    """Consecutive-failure breaker: open at ``failure_threshold``, probe after ``reset_timeout``.

    Each failed probe multiplies the wait before the next one by ``reset_multiplier``, up to
    ``max_reset_timeout`` (``None``: ``max(reset_timeout, DEFAULT_MAX_RESET_TIMEOUT)``); the wait
    starts over at ``reset_timeout`` when the breaker closes.
    """

    prefix: ClassVar[str] = "circuit_breaker"
    failure_threshold: int = 5
    reset_timeout: timedelta = timedelta(minutes=5)
    half_open_max_attempts: int = 1
    reset_multiplier: float = DEFAULT_RESET_MULTIPLIER
    max_reset_timeout: timedelta | None = None

    def __post_init__(self) -> None:
        _int_at_least(f"{self.prefix}.failure_threshold", self.failure_threshold, 1)
        _duration(f"{self.prefix}.reset_timeout", self.reset_timeout)
        _int_at_least(f"{self.prefix}.half_open_max_attempts", self.half_open_max_attempts, 1)
        _number_in(f"{self.prefix}.reset_multiplier", self.reset_multiplier, 1, 100, "in [1, 100]")
        if self.max_reset_timeout is not None:
            _duration(f"{self.prefix}.max_reset_timeout", self.max_reset_timeout)
            _require(
                self.max_reset_timeout >= self.reset_timeout,
                f"{self.prefix}.max_reset_timeout",
                self.max_reset_timeout,
                f"must be >= circuit_breaker.reset_timeout ({self.reset_timeout})",
            )

    @property
    def reset_timeout_cap(self) -> timedelta:
        """The longest open wait: ``max_reset_timeout``, or by default the larger of ``reset_timeout`` and
        ``DEFAULT_MAX_RESET_TIMEOUT``."""
        if self.max_reset_timeout is not None:
            return self.max_reset_timeout
        return max(self.reset_timeout, DEFAULT_MAX_RESET_TIMEOUT)


def _check_schedule(value: Any) -> None:
    if value is None or (isinstance(value, timedelta) and value > timedelta(0)):
        return
    if isinstance(value, str):
        text = value.strip()
        parts = text.split()
        if text in _CRON_PRESETS or (5 <= len(parts) <= 6 and all(_CRON_FIELD.match(p) for p in parts)):
            return
    raise SyncConfigError("schedule", value, "must be a cron expression, a positive timedelta or None")


def _check_trigger_assets(config: SyncConfig) -> None:
    """``trigger_assets``: a list of distinct, non-empty asset names (a bare string is a mistake)."""
    value = config.trigger_assets
    if not isinstance(value, list | tuple):
        raise SyncConfigError("trigger_assets", value, "must be a list of asset names")
    names = tuple(value)
    expected = f"entries must be non-empty names without surrounding spaces (at most {MAX_ASSET_NAME} chars)"
    for name in names:
        ok = isinstance(name, str) and name.strip() == name and 0 < len(name) <= MAX_ASSET_NAME
        _require(ok, "trigger_assets", name, expected)
    _require(len(set(names)) == len(names), "trigger_assets", list(names), "must not repeat a name")
    _require(
        not names or config.schedule not in ("@once", "@continuous"),
        "trigger_assets",
        list(names),
        f"cannot be combined with schedule {config.schedule!r}",
    )
    object.__setattr__(config, "trigger_assets", names)


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
        _require(
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
        _require(ok_endpoint, "endpoint", self.endpoint, "must be a path starting with '/' (not a URL)")
        _check_schedule(self.schedule)
        for name, kind in (
            ("rate_limit", RateLimitConfig),
            ("backoff", BackoffConfig),
            ("circuit_breaker", CircuitBreakerConfig),
        ):
            value = getattr(self, name)
            _require(isinstance(value, kind), name, value, f"must be a {kind.__name__}")
        _duration("timeout", self.timeout)
        _int_at_least("max_retries", self.max_retries, 0)
        _require(self.max_retries <= 100, "max_retries", self.max_retries, "must be <= 100")
        _duration("max_wait", self.max_wait, positive=False)
        _require(
            isinstance(self.conn_id, str) and bool(re.fullmatch(r"[\w.\-]{1,250}", self.conn_id)),
            "conn_id",
            self.conn_id,
            "must be an Airflow connection id (letters, digits, _ . -)",
        )
        for name in ("items_key", "next_cursor_field", "cursor_param"):
            value = getattr(self, name)
            _require(isinstance(value, str) and value != "", name, value, "must be a non-empty string")
        _int_at_least("max_pages", self.max_pages, 1)
        _int_at_least("max_response_bytes", self.max_response_bytes, 1024)
        _require(
            isinstance(self.invalid_response_is_failure, bool),
            "invalid_response_is_failure",
            self.invalid_response_is_failure,
            "must be true or false",
        )
        _int_at_least("max_redirects", self.max_redirects, 0)
        _require(
            self.max_redirects <= MAX_REDIRECTS,
            "max_redirects",
            self.max_redirects,
            f"must be <= {MAX_REDIRECTS}",
        )
        _duration("max_sync_duration", self.max_sync_duration)
        _duration("defer_after", self.defer_after, positive=False)
        _require(
            self.when_blocked in BLOCKED_STATES,
            "when_blocked",
            self.when_blocked,
            f"must be one of {', '.join(BLOCKED_STATES)}",
        )
        _check_trigger_assets(self)
        _require(isinstance(self.review, bool), "review", self.review, "must be true or false")
        _duration("review_timeout", self.review_timeout)
        for name, kind in _OPTIONAL_SECTIONS.items():
            value = getattr(self, name)
            _require(
                value is None or isinstance(value, kind), name, value, f"must be a {kind.__name__} or None"
            )
        if self.load is not None and self.load.table == "":
            object.__setattr__(self, "load", dataclasses.replace(self.load, table=self.source))
        object.__setattr__(self, "paginator", parse_paginator(self.paginator))
        spec = self.request_spec  # checks method, params, json, paginator and data_selector together
        object.__setattr__(self, "method", spec.method)
        object.__setattr__(self, "params", dict(spec.params))
        check_load_with_incremental(self.load, self.incremental)
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
            load = _optional_section(LoadConfig, dict(r.load), base) if r.load is not None else base
            if load is not None and load.table == "":
                load = dataclasses.replace(load, table=name)
            changes["load"] = load
            if r.incremental is not None:
                changes["incremental"] = _optional_section(IncrementalConfig, dict(r.incremental), None)
            return dataclasses.replace(self, **changes)
        except SyncConfigError as exc:
            if exc.field.startswith(r.prefix):
                raise
            raise SyncConfigError(f"{r.prefix}{exc.field}", exc.value, _expected(exc)) from None

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
                changes[key] = _optional_section(_OPTIONAL_SECTIONS[key], value, current)
            elif key == "paginator":
                changes[key] = parse_paginator(value)
            elif key == "resources":
                changes[key] = parse_resources(value or ())
            elif section is not None:
                current = getattr(base, key) if base is not None else section()
                changes[key] = _section_from_dict(section, value, current)
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
                value = {sf.name: _plain(getattr(value, sf.name)) for sf in dataclasses.fields(value)}
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            elif f.name in _SECTIONS:
                value = {  # no extra_windows: a single window reads as it always did
                    sf.name: _plain(getattr(value, sf.name))
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
            out[f.name] = list(value) if isinstance(value, tuple) else _plain(value)
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
    _require(isinstance(value, tuple), "resources", value, "must be a list of resources")
    check_resources(value)
    object.__setattr__(config, "resources", value)
    if value and config.review:
        raise SyncConfigError("review", True, "cannot be combined with resources (review one endpoint)")
    for r in value:
        config.for_resource(r.name)


def _expected(exc: SyncConfigError) -> str:
    """What ``exc`` said is expected (its message without the field and the value)."""
    text = str(exc).removeprefix(f"{exc.field} ")
    return text.rsplit(", got ", 1)[0]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple) and value and all(isinstance(v, WindowLimit) for v in value):
        return [v.to_dict() for v in value]
    return format_duration(value) if isinstance(value, timedelta) else value


def _section_from_dict(kind: Any, data: Any, current: Any) -> Any:
    if isinstance(data, kind):
        return data
    if kind is RateLimitConfig and isinstance(data, list):
        data = window_limits.from_list(data, kind.prefix)
        data.setdefault("extra_windows", ())
    if not isinstance(data, Mapping):
        raise SyncConfigError(kind.prefix, data, "must be a mapping")
    changes: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(kind)}
    for key, value in data.items():
        name = f"{kind.prefix}.{key}"
        if key not in names:
            raise SyncConfigError(name, value, f"is not a known field (known: {', '.join(names)})")
        is_duration = str(names[key].type).startswith("timedelta") and value is not None
        changes[key] = parse_duration(value, name) if is_duration else value
    return dataclasses.replace(current, **changes)


def _optional_section(kind: Any, data: Any, current: Any) -> Any:
    """``load:``/``incremental:``: null turns the section off; a mapping merges onto ``current``."""
    if data is None or isinstance(data, kind):
        return data
    if current is None:
        if not isinstance(data, Mapping):
            raise SyncConfigError(kind.prefix, data, "must be a mapping")
        names = {f.name: f for f in dataclasses.fields(kind)}
        for key, value in data.items():
            if key not in names:
                known = ", ".join(names)
                raise SyncConfigError(f"{kind.prefix}.{key}", value, f"is not a known field (known: {known})")
        try:
            current = kind(**{k: v for k, v in data.items() if k in ("cursor_field", "param")})
        except TypeError as exc:
            missing = next(n for n in ("cursor_field", "param") if n not in data)
            raise SyncConfigError(f"{kind.prefix}.{missing}", None, "is required") from exc
    return _section_from_dict(kind, data, current)


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
