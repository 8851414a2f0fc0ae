"""airflow-sync-provider: rate-limited, breaker-guarded syncs of external HTTP sources for Airflow 3.

The public names load lazily so that ``import airflow_sync_provider`` (provider discovery, DAG
parsing of unrelated DAGs) does not import the operator and hook until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_sync_provider.version import __version__

__all__ = [
    "DEFAULT_SYNC_CONFIGS",
    "BackoffConfig",
    "CircuitBreakerConfig",
    "RateLimitConfig",
    "RateLimitedSyncHook",
    "RateLimitedSyncOperator",
    "SyncConfig",
    "SyncErrorKind",
    "SyncResult",
    "__version__",
    "build_sync_dags",
]

_LOCATIONS = {
    "DEFAULT_SYNC_CONFIGS": "airflow_sync_provider.config",
    "BackoffConfig": "airflow_sync_provider.config",
    "CircuitBreakerConfig": "airflow_sync_provider.config",
    "RateLimitConfig": "airflow_sync_provider.config",
    "SyncConfig": "airflow_sync_provider.config",
    "SyncErrorKind": "airflow_sync_provider.results",
    "SyncResult": "airflow_sync_provider.results",
    "RateLimitedSyncHook": "airflow_sync_provider.hooks.sync",
    "RateLimitedSyncOperator": "airflow_sync_provider.operators.sync",
    "build_sync_dags": "airflow_sync_provider.authoring.dag_factory",
}

if TYPE_CHECKING:
    from airflow_sync_provider.authoring.dag_factory import build_sync_dags
    from airflow_sync_provider.config import (
        DEFAULT_SYNC_CONFIGS,
        BackoffConfig,
        CircuitBreakerConfig,
        RateLimitConfig,
        SyncConfig,
    )
    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
    from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
    from airflow_sync_provider.results import SyncErrorKind, SyncResult


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_sync_provider' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
