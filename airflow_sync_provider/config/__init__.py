"""The sources' configuration: ``SyncConfig`` (``config/source.py``) and its sections, each in its own
module with the checks that name the field and the value. Pure, read at DAG-parse time.

Every config name is importable from here, as it was when this was one module.
"""

from airflow_sync_provider.config.source import (
    BLOCKED_STATES,
    DEFAULT_MAX_LEARNED_WAIT,
    DEFAULT_MAX_RESET_TIMEOUT,
    DEFAULT_RESET_MULTIPLIER,
    DEFAULT_SAFETY_MARGIN,
    DEFAULT_SYNC_CONFIGS,
    JITTER_STRATEGIES,
    MAX_ASSET_NAME,
    MAX_LEARNED_WAIT,
    MAX_REDIRECTS,
    MAX_WINDOW_ENTRIES,
    SOURCE_NAME,
    BackoffConfig,
    CircuitBreakerConfig,
    RateLimitConfig,
    SyncConfig,
)

__all__ = [
    "BLOCKED_STATES",
    "DEFAULT_MAX_LEARNED_WAIT",
    "DEFAULT_MAX_RESET_TIMEOUT",
    "DEFAULT_RESET_MULTIPLIER",
    "DEFAULT_SAFETY_MARGIN",
    "DEFAULT_SYNC_CONFIGS",
    "JITTER_STRATEGIES",
    "MAX_ASSET_NAME",
    "MAX_LEARNED_WAIT",
    "MAX_REDIRECTS",
    "MAX_WINDOW_ENTRIES",
    "SOURCE_NAME",
    "BackoffConfig",
    "CircuitBreakerConfig",
    "RateLimitConfig",
    "SyncConfig",
]
