"""Provider metadata read by Airflow's ``ProvidersManager`` via the ``apache_airflow_provider`` entry point.

Kept free of Airflow imports so discovery stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow_sync_provider.version import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its hook, connection type, operator and triggers to Airflow."""
    return {
        "package-name": "airflow-sync-provider",
        "name": "Rate-limited Sync",
        "description": (
            "Syncs external HTTP sources on per-source schedules through a sliding-window rate "
            "limiter, a circuit breaker and bounded retries with backoff and jitter; breaker and "
            "window state are shared through Airflow Variables."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Rate-limited Sync",
                "external-doc-url": "https://pypi.org/project/airflow-sync-provider/",
                "tags": ["protocol"],
            }
        ],
        "operators": [
            {
                "integration-name": "Rate-limited Sync",
                "python-modules": ["airflow_sync_provider.operators.sync"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Rate-limited Sync",
                "python-modules": ["airflow_sync_provider.hooks.sync"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Rate-limited Sync",
                "python-modules": ["airflow_sync_provider.triggers.wait"],
            }
        ],
        "extra-links": ["airflow_sync_provider.operators.links.SyncDashboardLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_sync_provider.hooks.sync.RateLimitedSyncHook",
                "connection-type": "sync_http",
                "hook-name": "Rate-limited Sync (HTTP)",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"password": "Password or API key"},
                    "placeholders": {
                        "host": "api.example.com",
                        "schema": "https",
                        "extra": '{"Accept": "application/json"}',
                    },
                },
                "conn-fields": {
                    "api_key_header": {
                        "label": "API key header",
                        "schema": {"type": ["string", "null"]},
                        "description": (
                            "When set (e.g. X-API-Key), the password is sent in this header "
                            "instead of HTTP basic auth."
                        ),
                    },
                    "auth_type": {
                        "label": "Auth type",
                        "schema": {"type": ["string", "null"]},
                        "description": (
                            "basic (default: login/password), bearer (the password as a bearer token) "
                            "or oauth2_client_credentials (client id as login, secret as password)."
                        ),
                    },
                    "token_url": {
                        "label": "OAuth2 token URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "With oauth2_client_credentials: the token endpoint (https://...).",
                    },
                    "scopes": {
                        "label": "OAuth2 scopes",
                        "schema": {"type": ["string", "null"]},
                        "description": "With oauth2_client_credentials: the scopes, space-separated.",
                    },
                    "api_key_param": {
                        "label": "API key query parameter",
                        "schema": {"type": ["string", "null"]},
                        "description": (
                            "When set (e.g. api_key), the password is sent as this query parameter "
                            "instead of HTTP basic auth; logs and stored errors show it as ***."
                        ),
                    },
                },
            }
        ],
    }
