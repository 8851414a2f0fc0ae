"""Observability of syncs: metrics through Airflow's ``Stats`` and alerts on breaker transitions.

- ``metrics``: the six ``sync.*`` metrics, per sync and per breaker transition, each with the source
  in the name (plain StatsD) and as a ``source`` tag (Datadog, OpenTelemetry).
- ``alerts``: ``on_breaker_open`` / ``on_breaker_close`` / ``on_rate_limited`` targets (Airflow
  notifiers or callables) and the ``BreakerAlert`` they receive.

Neither may fail a sync: every error in them is logged and ignored.
"""

from __future__ import annotations

from airflow_sync_provider.observability.alerts import BreakerAlert
from airflow_sync_provider.observability.metrics import BREAKER_STATE_VALUES, METRIC_NAMES

__all__ = ["BREAKER_STATE_VALUES", "METRIC_NAMES", "BreakerAlert"]
