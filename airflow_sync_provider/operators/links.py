"""Operator extra link: the task's "Sync dashboard" button, pointing at its source's dashboard row.

In Airflow 3 the worker computes the link when the task finishes and stores it as an XCom
(``_link_SyncDashboardLink``); the UI resolves the class through the provider's ``extra-links``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

DASHBOARD_PATH = "/sync-provider/"


def dashboard_url(source: str | None = None) -> str:
    """``/sync-provider/#<source>``, under the path of ``[api] base_url`` when Airflow has one."""
    from airflow.configuration import conf

    base_path = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    anchor = f"#{quote(source, safe='')}" if source else ""
    return f"{base_path}{DASHBOARD_PATH}{anchor}"


class SyncDashboardLink(BaseOperatorLink):
    """Links a sync task to its source's row on the breaker dashboard."""

    name = "Sync dashboard"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        source = getattr(operator, "source", None)
        return dashboard_url(str(source) if source else None)
