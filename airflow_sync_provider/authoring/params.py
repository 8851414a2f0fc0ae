"""Run-time overrides from a manual trigger's params: they can only tighten a source's limits.

No param names a host, scheme or endpoint, so a trigger can never point requests elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncConfigError

TIGHTENING = {
    "max_requests": lambda c: c.rate_limit.max_requests,
    "max_retries": lambda c: c.max_retries,
    "max_pages": lambda c: c.max_pages,
}
MINIMUM = {"max_requests": 1, "max_retries": 0, "max_pages": 1}


OVERRIDE_KEYS = ("dry_run", "full_refresh", *TIGHTENING)


def run_overrides(context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's override values: declared params, else the same keys in the run's conf.

    DAGs built with ``trigger_params=False`` declare no params; their conf is read here instead.
    """
    params = dict(context.get("params") or {})
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    for key in OVERRIDE_KEYS:
        if key not in params and isinstance(conf, Mapping) and key in conf:
            params[key] = conf[key]
    return params


def apply_params(config: SyncConfig, params: Mapping[str, Any] | None) -> tuple[SyncConfig, bool]:
    """The config for this run and whether it is a dry run; bad params raise ``SyncConfigError``."""
    params = params or {}
    dry_run = params.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise SyncConfigError("params.dry_run", dry_run, "must be true or false")
    for name, current in TIGHTENING.items():
        value = params.get(name)
        if value is None:
            continue
        ceiling = current(config)
        if isinstance(value, bool) or not isinstance(value, int) or not MINIMUM[name] <= value <= ceiling:
            raise SyncConfigError(
                f"params.{name}",
                value,
                f"must be an integer in [{MINIMUM[name]}, {ceiling}] (params can only tighten limits)",
            )
        if name == "max_requests":
            config = config.replace(rate_limit=dataclasses.replace(config.rate_limit, max_requests=value))
        else:
            config = config.replace(**{name: value})
    return config, dry_run


def full_refresh_requested(params: Mapping[str, Any] | None) -> bool:
    """``full_refresh``: ignore the incremental bookmark this run (fetch from ``initial_value``)."""
    value = (params or {}).get("full_refresh", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SyncConfigError("params.full_refresh", value, "must be true or false")
    return value
