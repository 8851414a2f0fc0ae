"""``SyncDashboardPlugin``: mounts the breaker dashboard at ``/sync-provider`` and links it from the UI.

Registered on the ``airflow.plugins`` entry point (provider-declared plugins load only with
``lazy_discover_providers=False``). The link is an *external view* with a ``url_route``, so the
Airflow UI shows the page inside its own frame under Browse -> Sync breakers
(``/plugin/sync-breakers``); ``href`` is relative so it follows ``[api] base_url``. Its listener
(``pool_guard``) fails a sync at once when its pool is missing; ``run_notes`` notes runs that did not sync;
``breaker_warnings`` puts a DAG warning on every DAG of a source whose breaker is open.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_sync_provider.plugins import breaker_warnings, pool_guard, run_notes
from airflow_sync_provider.plugins.api import app

URL_PREFIX = "/sync-provider"


class SyncDashboardPlugin(AirflowPlugin):
    """Circuit-breaker dashboard for airflow-sync-provider sources."""

    name = "sync_provider"
    listeners = [pool_guard, run_notes, breaker_warnings]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Sync breakers"}]
    external_views = [
        {
            "name": "Sync breakers",
            "href": "sync-provider/",
            "url_route": "sync-breakers",
            "destination": "nav",
            "category": "browse",
        }
    ]
