"""How one endpoint is requested and read: method, params, JSON body, paginator, data selector.

``EndpointConfig`` is the request half of a source (and, later, of each of its resources); the
paginator speaks the vocabulary of dlt's ``rest_api`` source (``type: offset``, ``limit``,
``total_path`` ...) plus ``last_item_cursor``. Everything is checked on construction; a bad value
raises ``SyncConfigError`` naming the field (with the caller's prefix) and the value.
``parse_endpoint(data, prefix)`` reads the dict form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_sync_provider.config import templates
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.run import json_paths

METHODS = ("GET", "POST")
_REQUIRED = object()
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()
"""A paginator field not given (its type's default applies); ``None`` given turns a stop or path off."""

PAGINATOR_FIELDS: Mapping[str, Mapping[str, Any]] = {
    "single_page": {},
    "header_link": {"links_next_key": "next"},
    "json_link": {"next_url_path": "next", "has_more_path": None},
    "cursor": {
        "cursor_path": "cursors.next",
        "cursor_param": None,
        "cursor_body_path": None,
        "stop_after_empty_page": False,
        "has_more_path": None,
    },
    "offset": {
        "limit": _REQUIRED,
        "offset": 0,
        "offset_param": None,
        "offset_body_path": None,
        "limit_param": None,
        "limit_body_path": None,
        "total_path": "total",
        "maximum_offset": None,
        "stop_after_empty_page": True,
        "has_more_path": None,
    },
    "page_number": {
        "base_page": 0,
        "page": None,
        "page_param": None,
        "page_body_path": None,
        "total_path": "total",
        "maximum_page": None,
        "stop_after_empty_page": True,
        "has_more_path": None,
    },
    "last_item_cursor": {
        "cursor_field": "id",
        "cursor_param": None,
        "cursor_body_path": None,
        "has_more_path": "has_more",
    },
}
"""Each paginator type and its fields with their defaults (dlt's where dlt has the type)."""
PAGINATOR_TYPES = tuple(PAGINATOR_FIELDS)
_PARAM_DEFAULTS = {
    "cursor_param": ("cursor_body_path", {"cursor": "cursor", "last_item_cursor": "starting_after"}),
    "offset_param": ("offset_body_path", {"offset": "offset"}),
    "limit_param": ("limit_body_path", {"offset": "limit"}),
    "page_param": ("page_body_path", {"page_number": "page"}),
}
"""A query param's default applies when its ``*_body_path`` alternative is not set."""
_PATHS = (
    "next_url_path",
    "cursor_path",
    "cursor_body_path",
    "offset_body_path",
    "limit_body_path",
    "page_body_path",
    "total_path",
    "has_more_path",
    "cursor_field",
)
_NAMES = ("links_next_key", "cursor_param", "offset_param", "limit_param", "page_param")


@dataclass(frozen=True, kw_only=True)
class PaginatorConfig:
    """One paginator: its ``type`` and the fields of that type (``PAGINATOR_FIELDS``); unset fields take
    the type's default, fields of another type must stay unset. ``prefix`` names it in messages."""

    type: str
    links_next_key: str | None = UNSET
    next_url_path: str | None = UNSET
    cursor_path: str | None = UNSET
    cursor_param: str | None = UNSET
    cursor_body_path: str | None = UNSET
    cursor_field: str | None = UNSET
    limit: int | None = UNSET
    offset: int | None = UNSET
    offset_param: str | None = UNSET
    offset_body_path: str | None = UNSET
    limit_param: str | None = UNSET
    limit_body_path: str | None = UNSET
    base_page: int | None = UNSET
    page: int | None = UNSET
    page_param: str | None = UNSET
    page_body_path: str | None = UNSET
    total_path: str | None = UNSET
    maximum_offset: int | None = UNSET
    maximum_page: int | None = UNSET
    stop_after_empty_page: bool | None = UNSET
    has_more_path: str | None = UNSET
    prefix: str = field(default="paginator", compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.prefix
        if self.type not in PAGINATOR_FIELDS:
            raise SyncConfigError(f"{p}.type", self.type, f"must be one of {', '.join(PAGINATOR_TYPES)}")
        allowed = PAGINATOR_FIELDS[self.type]
        for name in _field_names():
            value = getattr(self, name)
            if name not in allowed:
                if value is not UNSET and value is not None:
                    known = ", ".join(allowed) or "none"
                    raise SyncConfigError(
                        f"{p}.{name}", value, f"is not a field of type {self.type} (its fields: {known})"
                    )
                object.__setattr__(self, name, None)
                continue
            default = allowed[name]
            if name in _PARAM_DEFAULTS:
                alternative, defaults = _PARAM_DEFAULTS[name]
                given = getattr(self, alternative) not in (UNSET, None)
                default = None if given else defaults.get(self.type)
            if value is UNSET:
                value = default
            if value is _REQUIRED or (value is None and default is _REQUIRED):
                raise SyncConfigError(f"{p}.{name}", None, f"is required for type {self.type}")
            object.__setattr__(self, name, value)
        self._check_values()

    def _check_values(self) -> None:
        p = self.prefix
        for name in _PATHS:
            value = getattr(self, name)
            ok = value is None or (json_paths.is_valid(value) and value != "$")
            _require(ok, f"{p}.{name}", value, "must be a dotted JSON path like data.next")
        for name in _NAMES:
            value = getattr(self, name)
            ok = value is None or (isinstance(value, str) and value.strip() == value and value != "")
            _require(ok, f"{p}.{name}", value, "must be a non-empty name")
        for name, low in (("limit", 1), ("offset", 0), ("base_page", 0), ("page", 0)):
            _int_at_least(f"{p}.{name}", getattr(self, name), low)
        for name in ("maximum_offset", "maximum_page"):
            _int_at_least(f"{p}.{name}", getattr(self, name), 1)
        value = self.stop_after_empty_page
        _require(
            value is None or isinstance(value, bool),
            f"{p}.stop_after_empty_page",
            value,
            "must be true or false",
        )
        for param, (body_path, _) in _PARAM_DEFAULTS.items():
            both = getattr(self, param) is not None and getattr(self, body_path) is not None
            _require(
                not both, f"{p}.{body_path}", getattr(self, body_path), f"cannot be combined with {param}"
            )
        if self.type == "page_number" and self.page is not None:
            _require(
                self.page >= (self.base_page or 0),
                f"{p}.page",
                self.page,
                f"must be >= base_page ({self.base_page})",
            )
        if self.type in ("offset", "page_number"):
            maximum = self.maximum_offset if self.type == "offset" else self.maximum_page
            stops = (self.total_path, maximum, self.has_more_path, self.stop_after_empty_page or None)
            _require(
                any(s is not None for s in stops),
                f"{p}.stop_after_empty_page",
                self.stop_after_empty_page,
                "must be true when total_path, has_more_path and the maximum are unset (nothing would stop)",
            )

    def to_dict(self) -> dict[str, Any]:
        """The dict form: ``type`` and every field of the type (``parse_paginator`` reads it back)."""
        return {"type": self.type, **{name: getattr(self, name) for name in PAGINATOR_FIELDS[self.type]}}


def _field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(PaginatorConfig) if f.name not in ("type", "prefix"))


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """How one endpoint is requested: ``path`` below the connection's base URL, ``method``, query
    ``params`` and a ``json`` body (string values may name run values, see ``templates``), the
    ``paginator`` (``None``: today's ``Link`` header or ``next_cursor_field``) and ``data_selector``,
    the path of the items in a page (``None``: a top-level list or ``items_key``)."""

    path: str = ""
    method: str = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    paginator: PaginatorConfig | None = None
    data_selector: str | None = None
    prefix: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.prefix
        path = self.path
        ok = isinstance(path, str) and (
            path == ""
            or (
                path.startswith("/")
                and not path.startswith("//")
                and "://" not in path
                and not any(ch.isspace() for ch in path)
            )
        )
        _require(ok, f"{p}path", path, "must be a path starting with '/' (not a URL)")
        ok = isinstance(self.method, str) and self.method.upper() in METHODS
        _require(ok, f"{p}method", self.method, f"must be one of {', '.join(METHODS)}")
        object.__setattr__(self, "method", self.method.upper())
        _require(
            isinstance(self.params, Mapping),
            f"{p}params",
            self.params,
            "must be a mapping of names to values",
        )
        for key, value in self.params.items():
            name = f"{p}params.{key}"
            _require(isinstance(key, str) and key != "", f"{p}params", key, "keys must be non-empty names")
            ok = isinstance(value, str | int | float | bool) or (
                isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)
            )
            _require(ok, name, value, "must be a string, number, boolean or a list of them")
        templates.check(dict(self.params), f"{p}params")
        _require(
            self.json is None or isinstance(self.json, Mapping),
            f"{p}json",
            self.json,
            "must be a JSON object",
        )
        if self.json is not None:
            _require(self.method == "POST", f"{p}json", self.json, "needs method: POST")
            templates.check(dict(self.json), f"{p}json")
        _require(
            self.paginator is None or isinstance(self.paginator, PaginatorConfig),
            f"{p}paginator",
            self.paginator,
            "must be a PaginatorConfig",
        )
        selector = self.data_selector
        _require(
            selector is None or json_paths.is_valid(selector),
            f"{p}data_selector",
            selector,
            "must be a dotted JSON path like data or response.items ($ for the whole body)",
        )
        pag = self.paginator
        if pag is not None and self.method == "GET":
            for name in ("cursor_body_path", "offset_body_path", "limit_body_path", "page_body_path"):
                value = getattr(pag, name)
                _require(value is None, f"{pag.prefix}.{name}", value, "needs method: POST (a JSON body)")


def parse_paginator(data: Any, prefix: str = "paginator") -> PaginatorConfig | None:
    """``paginator:`` as a type name (``header_link``), a mapping with ``type``, or null."""
    if data is None or isinstance(data, PaginatorConfig):
        return data
    if isinstance(data, str):
        data = {"type": data}
    if not isinstance(data, Mapping):
        raise SyncConfigError(
            prefix, data, f"must be a type name ({', '.join(PAGINATOR_TYPES)}) or a mapping"
        )
    if "type" not in data:
        raise SyncConfigError(f"{prefix}.type", None, f"is required (one of {', '.join(PAGINATOR_TYPES)})")
    kind = data["type"]
    if kind not in PAGINATOR_FIELDS:
        raise SyncConfigError(f"{prefix}.type", kind, f"must be one of {', '.join(PAGINATOR_TYPES)}")
    allowed = PAGINATOR_FIELDS[kind]
    for key, value in data.items():
        if key != "type" and key not in allowed:
            known = ", ".join(allowed) or "none"
            raise SyncConfigError(
                f"{prefix}.{key}", value, f"is not a field of type {kind} (its fields: {known})"
            )
    return PaginatorConfig(**{**data, "prefix": prefix})


ENDPOINT_KEYS = ("path", "method", "params", "json", "paginator", "data_selector")


def parse_endpoint(data: Mapping[str, Any], prefix: str = "") -> EndpointConfig:
    """An ``EndpointConfig`` from its dict form; ``prefix`` (``resources.orders.``) leads every field name."""
    if not isinstance(data, Mapping):
        raise SyncConfigError(prefix.rstrip(".") or "endpoint", data, "must be a mapping")
    for key, value in data.items():
        if key not in ENDPOINT_KEYS:
            raise SyncConfigError(
                f"{prefix}{key}", value, f"is not a known field (known: {', '.join(ENDPOINT_KEYS)})"
            )
    values = dict(data)
    if values.get("params") is None:
        values.pop("params", None)
    if "paginator" in values:
        values["paginator"] = parse_paginator(values["paginator"], f"{prefix}paginator")
    return EndpointConfig(**values, prefix=prefix)


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise SyncConfigError(name, value, expected)


def _int_at_least(name: str, value: Any, minimum: int) -> None:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= minimum)
    _require(ok, name, value, f"must be an integer >= {minimum}")
