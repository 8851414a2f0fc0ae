"""Several resources under one source: ``resources:`` in a source's config, pure and checked on parse.

A source is an API and its credentials (one window, one breaker, one learned quota, one pool); each
resource is one endpoint of it with its own request (``parse_endpoint``: path, method, params, json,
paginator, data_selector), ``load`` (merged onto the source's, table defaulting to the resource's
name) and ``incremental``. A field a resource leaves out takes the source's value.

A child resource takes values from a parent resource's items, in dlt ``rest_api``'s vocabulary: a
placeholder ``{resources.<parent>.<field>}`` in its path, or a param
``{type: resolve, resource: <parent>, field: <field>}`` (in the path when the path names the param as
``{param}``, else sent as a query param). ``include_from_parent`` copies parent fields into each child
item as ``_<parent>_<field>``; ``on_missing_parent`` (``skip`` | ``fail``) says what a child 404 does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_sync_provider.config.endpoint import ENDPOINT_KEYS, EndpointConfig, parse_endpoint
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.run import json_paths

RESOURCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
"""A resource's name is its task id: letters, digits and ``_`` (no dots, dashes or spaces)."""
ON_MISSING_PARENT = ("skip", "fail")
OWN_KEYS = ("name", "load", "incremental", "include_from_parent", "on_missing_parent")
RESOURCE_KEYS = (*OWN_KEYS, *ENDPOINT_KEYS)
_REFERENCE = re.compile(r"\{resources\.([^.{}]+)\.([^{}]+)\}")
_PARAM_IN_PATH = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ParentValue:
    """One value a child request takes from its parent's item: ``field`` (a dotted path) of the item,
    put in the path at ``placeholder`` (the exact text replaced) or sent as query param ``param``."""

    field: str
    placeholder: str | None = None
    param: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResourceConfig:
    """One endpoint of a source. ``given`` names the endpoint fields the resource set itself (the
    others take the source's values); ``load`` and ``incremental`` are the resource's own sections in
    their dict form (``None``: the source's)."""

    name: str
    endpoint: EndpointConfig
    given: frozenset[str] = frozenset()
    load: Mapping[str, Any] | None = None
    incremental: Mapping[str, Any] | None = None
    parent: str | None = None
    parent_values: tuple[ParentValue, ...] = ()
    include_from_parent: tuple[str, ...] = ()
    on_missing_parent: str = "skip"
    prefix: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The dict form (``parse_resources`` reads it back)."""
        ep = self.endpoint
        out: dict[str, Any] = {"name": self.name}
        for key in ENDPOINT_KEYS:
            if key in self.given:
                value = getattr(ep, key)
                out[key] = value.to_dict() if hasattr(value, "to_dict") else value
        out["path"] = ep.path
        params = dict(out.get("params") or {})
        for pv in self.parent_values:
            name = pv.param
            if name is None and pv.placeholder and not pv.placeholder.startswith("{resources."):
                name = pv.placeholder[1:-1]  # a resolve param named in the path
            if name is not None:
                params[name] = {"type": "resolve", "resource": self.parent, "field": pv.field}
        if params:
            out["params"] = params
        for key in ("load", "incremental"):
            if getattr(self, key) is not None:
                out[key] = dict(getattr(self, key))
        if self.include_from_parent:
            out["include_from_parent"] = list(self.include_from_parent)
        if self.parent is not None:
            out["on_missing_parent"] = self.on_missing_parent
        return out


def parse_resources(data: Any) -> tuple[ResourceConfig, ...]:
    """``resources:`` as a list of mappings with ``name`` (``resources[i].``) or a mapping of name to
    fields (``resources.<name>.``); names must be unique and task-id safe, parents must exist."""
    if isinstance(data, Mapping):
        entries = []
        for name, body in data.items():
            if body is not None and not isinstance(body, Mapping):
                raise SyncConfigError(f"resources.{name}", body, "must be a mapping")
            if body and "name" in body and body["name"] != name:
                raise SyncConfigError(f"resources.{name}.name", body["name"], f"must equal {name!r}")
            entries.append((f"resources.{name}.", {**(body or {}), "name": name}))
    elif isinstance(data, list | tuple):
        entries = [(f"resources[{i}].", body) for i, body in enumerate(data)]
    else:
        raise SyncConfigError("resources", data, "must be a list of resources (each with a name)")
    resources = tuple(
        body if isinstance(body, ResourceConfig) else parse_resource(body, prefix) for prefix, body in entries
    )
    check_resources(resources)
    return resources


def check_resources(resources: tuple[ResourceConfig, ...]) -> None:
    """Names unique; every parent an existing, other, top-level resource."""
    seen: dict[str, ResourceConfig] = {}
    for r in resources:
        if not isinstance(r, ResourceConfig):
            raise SyncConfigError("resources", r, "must hold ResourceConfig objects")
        if r.name in seen:
            raise SyncConfigError(f"{r.prefix}name", r.name, "is used by another resource of this source")
        seen[r.name] = r
    for r in resources:
        if r.parent is None:
            continue
        parent = seen.get(r.parent)
        where = f"{r.prefix}path"
        if parent is None or parent is r:
            known = ", ".join(n for n in seen if n != r.name) or "none"
            raise SyncConfigError(where, r.parent, f"names no other resource of this source (known: {known})")
        if parent.parent is not None:
            raise SyncConfigError(
                where, r.parent, f"is itself a child of {parent.parent!r} (one level of parents only)"
            )


def parse_resource(data: Any, prefix: str) -> ResourceConfig:
    """One resource from its dict form; every message names the field with ``prefix``."""
    if not isinstance(data, Mapping):
        raise SyncConfigError(prefix.rstrip("."), data, "must be a mapping with a name and a path")
    for key, value in data.items():
        if key not in RESOURCE_KEYS:
            known = ", ".join(RESOURCE_KEYS)
            raise SyncConfigError(f"{prefix}{key}", value, f"is not a known resource field (known: {known})")
    name = data.get("name")
    if not (isinstance(name, str) and RESOURCE_NAME.fullmatch(name)):
        raise SyncConfigError(
            f"{prefix}name", name, "must be a task id: a letter, then letters, digits or _ (at most 63)"
        )
    if "path" not in data:
        raise SyncConfigError(f"{prefix}path", None, "is required")
    params = dict(data.get("params") or {})
    resolved = {k: v for k, v in params.items() if isinstance(v, Mapping) and v.get("type") == "resolve"}
    endpoint_data = {k: v for k, v in data.items() if k in ENDPOINT_KEYS}
    if "params" in endpoint_data:
        endpoint_data["params"] = {k: v for k, v in params.items() if k not in resolved}
    path = data["path"]
    parent, values = _parent_values(path, resolved, prefix)
    for pv in values:  # placeholders become a plain segment for the path check
        if pv.placeholder is not None and isinstance(path, str):
            path = path.replace(pv.placeholder, "x")
    endpoint_data["path"] = path
    parse_endpoint(endpoint_data, prefix)  # checks the path with the placeholders filled
    endpoint = parse_endpoint({**endpoint_data, "path": data["path"]}, prefix)
    include = data.get("include_from_parent") or ()
    if isinstance(include, str):
        include = (include,)
    ok = isinstance(include, list | tuple) and all(
        isinstance(f, str) and json_paths.is_valid(f) for f in include
    )
    if not ok:
        raise SyncConfigError(f"{prefix}include_from_parent", include, "must be a list of parent field names")
    if include and parent is None:
        raise SyncConfigError(
            f"{prefix}include_from_parent", list(include), "needs a parent in path or params"
        )
    on_missing = data.get("on_missing_parent", "skip")
    if on_missing not in ON_MISSING_PARENT:
        raise SyncConfigError(
            f"{prefix}on_missing_parent", on_missing, f"must be one of {', '.join(ON_MISSING_PARENT)}"
        )
    for key in ("load", "incremental"):
        value = data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise SyncConfigError(f"{prefix}{key}", value, "must be a mapping")
    return ResourceConfig(
        name=name,
        endpoint=endpoint,
        given=frozenset(k for k in ENDPOINT_KEYS if k in data),
        load=data.get("load"),
        incremental=data.get("incremental"),
        parent=parent,
        parent_values=values,
        include_from_parent=tuple(include),
        on_missing_parent=on_missing,
        prefix=prefix,
    )


def _parent_values(
    path: Any, resolved: Mapping[str, Mapping[str, Any]], prefix: str
) -> tuple[str | None, tuple[ParentValue, ...]]:
    """The parent a resource names and the values it takes, from the path and ``resolve`` params."""
    parents: set[str] = set()
    values: list[ParentValue] = []
    text = path if isinstance(path, str) else ""
    for match in _REFERENCE.finditer(text):
        parent, name = match.group(1), match.group(2)
        if not json_paths.is_valid(name):
            raise SyncConfigError(f"{prefix}path", path, f"names {name!r}, not a field path of {parent!r}")
        parents.add(parent)
        values.append(ParentValue(field=name, placeholder=match.group(0)))
    in_path = set(_PARAM_IN_PATH.findall(text))
    for param, spec in resolved.items():
        where = f"{prefix}params.{param}"
        unknown = set(spec) - {"type", "resource", "field"}
        if unknown:
            raise SyncConfigError(
                where, dict(spec), f"has unknown keys {sorted(unknown)} (type, resource, field)"
            )
        parent, name = spec.get("resource"), spec.get("field")
        if not isinstance(parent, str) or not parent:
            raise SyncConfigError(f"{where}.resource", parent, "must name the parent resource")
        if not isinstance(name, str) or not json_paths.is_valid(name):
            raise SyncConfigError(f"{where}.field", name, "must be a field path of the parent's items")
        parents.add(parent)
        if param in in_path:
            values.append(ParentValue(field=name, placeholder=f"{{{param}}}"))
        else:
            values.append(ParentValue(field=name, param=param))
    if len(parents) > 1:
        raise SyncConfigError(
            f"{prefix}path", path, f"takes values from several parents {sorted(parents)} (one only)"
        )
    leftover = in_path - {p for p in resolved}
    if leftover:
        raise SyncConfigError(
            f"{prefix}path", path, f"has placeholders {sorted(leftover)} that no resolve param fills"
        )
    return (next(iter(parents)) if parents else None), tuple(values)
