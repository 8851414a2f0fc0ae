"""Sync DAGs for tests/observability, installed into the test session's dags folder.

- ``test_obs_metrics``: a plain sync of the source ``obs_metrics`` (the StatsD test).
- ``test_obs_alerts``: breaker after 2 failures; ``OBS_RESET_TIMEOUT_S`` (read when the file is parsed,
  so each ``airflow dags test`` run can set it) is its reset timeout. Open and close alerts go to a
  plain callable and to a ``BaseNotifier`` subclass; both append one JSON line to ``$SYNC_ALERT_FILE``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from airflow_sync_provider import SyncConfig, build_sync_dags
from airflow_sync_provider.config import BackoffConfig, CircuitBreakerConfig
from airflow_sync_provider.observability.alerts import BreakerAlert


def _append(record: dict[str, Any]) -> None:
    with open(os.environ["SYNC_ALERT_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def record_alert(alert: BreakerAlert) -> None:
    _append({"via": "callable", **alert.to_dict()})


class FileNotifier(BaseNotifier):
    """A notifier whose one templated field is rendered against the task context + ``sync_alert``."""

    template_fields = ("line",)

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def notify(self, context: Any) -> None:
        _append({"via": "notifier", "line": self.line})


FAST = BackoffConfig(initial_delay=timedelta(milliseconds=50), max_delay=timedelta(milliseconds=100))
RESET = timedelta(seconds=float(os.environ.get("OBS_RESET_TIMEOUT_S", "600")))
CONFIGS = [
    SyncConfig(source="obs_metrics", schedule=None, backoff=FAST, max_retries=2),
    SyncConfig(
        source="obs_alerts",
        schedule=None,
        backoff=FAST,
        max_retries=3,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, reset_timeout=RESET),
    ),
]
NOTIFIER = FileNotifier("{{ ti.dag_id }} | {{ sync_alert.event }} | {{ sync_alert.message }}")

globals().update(
    build_sync_dags(
        CONFIGS,
        dag_id_prefix="test_",
        on_breaker_open={"obs_alerts": [record_alert, NOTIFIER]},
        on_breaker_close={"obs_alerts": [record_alert, NOTIFIER]},
    )
)
