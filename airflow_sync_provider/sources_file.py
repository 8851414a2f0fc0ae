"""Read a sources YAML file: per-source overrides of ``DEFAULT_SYNC_CONFIGS`` and new sources.

::

    include_defaults: true        # start from the seven default sources (default: true)
    load: {destination: duckdb}   # where every source lands its items unless it says otherwise
    sources:
      airdrops:                   # override some fields of a default source
        rate_limit: {max_requests: 30}
      my_api:                     # a new source: every field not given takes its default
        endpoint: /v2/things
        schedule: "*/10 * * * *"

``$SYNC_LOAD`` (a YAML mapping, or ``null``) replaces the top-level ``load`` without editing the file,
e.g. ``SYNC_LOAD='{destination: postgres, conn_id: sync_warehouse}'`` in the compose file.
Errors name the file, the source and the field. Reading a local file is the only I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.config.form import optional_section
from airflow_sync_provider.exceptions import SyncConfigError

SOURCES_FILE_ENV = "SYNC_SOURCES_FILE"
LOAD_ENV = "SYNC_LOAD"
TOP_LEVEL_KEYS = ("include_defaults", "load", "sources")


class SourcesFileError(SyncConfigError):
    """A sources file that cannot be used; the message names the file, source and field."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        ValueError.__init__(self, f"{path}: {message}")


def resolve_path(default: Path | str) -> Path:
    """``$SYNC_SOURCES_FILE`` when set, else ``default``."""
    return Path(os.environ.get(SOURCES_FILE_ENV) or default)


def load_sources(path: Path | str) -> dict[str, SyncConfig]:
    """The configs a sources file describes, keyed by source."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourcesFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourcesFileError(path, f"is not valid YAML ({exc})") from None
    return configs_from_mapping(data if data is not None else {}, path)


def configs_from_mapping(data: Any, path: Path | str = "<sources>") -> dict[str, SyncConfig]:
    if not isinstance(data, Mapping):
        raise SourcesFileError(
            path, f"must be a mapping with keys {TOP_LEVEL_KEYS}, got {type(data).__name__}"
        )
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise SourcesFileError(
                path, f"unknown top-level key {key!r} (known: {', '.join(TOP_LEVEL_KEYS)})"
            )
    include = data.get("include_defaults", True)
    if not isinstance(include, bool):
        raise SourcesFileError(path, f"include_defaults must be true or false, got {include!r}")
    sources = data.get("sources")
    sources = {} if sources is None else sources
    if not isinstance(sources, Mapping):
        raise SourcesFileError(path, f"sources must be a mapping of source name to settings, got {sources!r}")
    load = _top_level_load(data, path)
    configs: dict[str, SyncConfig] = dict(DEFAULT_SYNC_CONFIGS) if include else {}
    configs = {name: config.replace(load=load) for name, config in configs.items()}
    for name, settings in sources.items():
        settings = {} if settings is None else settings  # `false`/`[]` must not pass as "no changes"
        try:
            if not isinstance(settings, Mapping):
                raise SyncConfigError(str(name), settings, "must be a mapping of settings")
            if "source" in settings and settings["source"] != name:
                raise SyncConfigError("source", settings["source"], f"must equal the key {name!r}")
            base = configs.get(str(name))
            if base is None and str(name) in DEFAULT_SYNC_CONFIGS:
                base = DEFAULT_SYNC_CONFIGS[str(name)].replace(load=load)
            if base is None and load is None:
                configs[str(name)] = SyncConfig.from_dict({**settings, "source": name})
            elif base is None:
                fresh = SyncConfig(source=str(name), load=load)
                configs[str(name)] = SyncConfig.from_dict(dict(settings), base=fresh)
            else:
                configs[str(name)] = SyncConfig.from_dict(dict(settings), base=base)
        except SyncConfigError as exc:
            raise SourcesFileError(path, f"source {name!r}: {exc}") from None
    return configs


def _top_level_load(data: Mapping[str, Any], path: Path | str) -> Any:
    """The file's ``load`` defaults, or ``$SYNC_LOAD`` when set (``null`` turns loading off)."""
    raw, where = data.get("load"), "load"
    env = os.environ.get(LOAD_ENV)
    if env is not None and env.strip():
        try:
            raw, where = yaml.safe_load(env), f"${LOAD_ENV}"
        except yaml.YAMLError as exc:
            raise SourcesFileError(path, f"${LOAD_ENV} is not valid YAML ({exc})") from None
    from airflow_sync_provider.config.load import LoadConfig

    try:
        return optional_section(LoadConfig, raw, None)
    except SyncConfigError as exc:
        raise SourcesFileError(path, f"{where}: {exc}") from None
