"""The dashboard's FastAPI app, mounted by the api-server at ``/sync-provider``.

Routes (all need an authenticated Airflow user; plugin apps get no auth unless they ask for it):

========================================  ==========================================================
``GET  /sync-provider/``                  the HTML page (table, colours, auto-refresh, reset buttons)
``GET  /sync-provider/api/states``        every known source's state as JSON
``POST /sync-provider/api/states/{s}/reset``  queue a ``sync_admin`` run resetting ``s``: 202 + run id
========================================  ==========================================================

Permissions, both scoped to the ``sync_admin`` DAG:

- reading (page, states): *read DAG runs* of ``sync_admin``. A user who may read that DAG's runs
  already sees every state in its ``show_states`` task, so the dashboard reveals nothing new.
  Variable read access is deliberately not required: Airflow's Variable permission covers every
  Variable, including secrets, and is far broader than "see breaker health".
- reset: *create DAG runs* of ``sync_admin``, exactly what ``POST /api/v2/dags/sync_admin/dagRuns``
  needs, because the reset IS such a run. The plugin adds no capability a user did not have in the
  Airflow UI, and it never writes the Variable itself (that would race a running sync).

The browser authenticates with the ``_token`` cookie the Airflow UI sets at login (HttpOnly,
SameSite=Lax); ``Authorization: Bearer <jwt>`` works too, for scripts. Nothing here touches the DB
at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.api_fastapi.logging.decorators import action_logging
from fastapi import Depends, FastAPI, HTTPException, Response, status
from fastapi.responses import HTMLResponse

from airflow_sync_provider.admin import operations
from airflow_sync_provider.sources_file import SourcesFileError
from airflow_sync_provider.state import reader as state_reader

ADMIN_DAG_ID = operations.ADMIN_DAG_ID
NO_STORE = {"Cache-Control": "no-store"}

can_read = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=ADMIN_DAG_ID))
can_reset = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=ADMIN_DAG_ID))

app = FastAPI(
    title="Sync breakers",
    description="Circuit-breaker and rate-limit state of airflow-sync-provider sources",
    # no unauthenticated /docs or /openapi.json on the plugin app
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@cache
def _page() -> str:
    return (
        resources.files("airflow_sync_provider.plugins").joinpath("static/dashboard.html").read_text("utf-8")
    )


@app.get("/", response_class=HTMLResponse, dependencies=[can_read])
def dashboard_page() -> HTMLResponse:
    """The dashboard page; it fetches ``api/states`` with the browser's Airflow session cookie."""
    return HTMLResponse(_page(), headers=NO_STORE)


def _known_configs(problems: list[str], state_sources: Iterable[str] | None = None) -> dict[str, Any]:
    """Known sources; a broken sources file is reported, not fatal: the dashboard still shows the rest."""
    try:
        return operations.known_configs(warn=problems.append, state_sources=state_sources)
    except SourcesFileError as exc:
        problems.append(f"sources file ignored: {exc}")
        return operations.known_configs(warn=problems.append, read_file=False, state_sources=state_sources)


@app.get("/api/states", dependencies=[can_read])
def get_states(user: GetUserDep, response: Response) -> dict[str, Any]:
    """Every known source (defaults, sources file, ``sync_state_*`` Variables) with its state.

    Every state comes from one query (``state_reader``), the next runs from another: the cost does not
    grow with a Variable read per source.
    """
    from airflow_sync_provider.admin.setup import missing_pools

    problems: list[str] = []
    raw = state_reader.read_state_variables()
    configs = _known_configs(problems, state_sources=raw)
    problems.extend(
        f"{key} is set in the environment: the operator reads it instead of the state in the metadata DB"
        for key in state_reader.shadowing_env_variables()
    )
    response.headers.update(NO_STORE)
    return {
        "generated_at": datetime.now(tz=UTC).timestamp(),
        "states": state_reader.read_states(configs, raw=raw, with_runs=True),
        "missing_pools": missing_pools(configs.values()),
        "admin_dag": _admin_dag_status(),
        "can_reset": _may_reset(user),
        "problems": problems,
    }


@app.post(
    "/api/states/{source}/reset",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[can_reset, Depends(action_logging("sync_provider_reset_breaker"))],
)
def reset_breaker(source: str, user: GetUserDep, response: Response) -> dict[str, Any]:
    """Queue a ``sync_admin`` run that resets ``source`` in its pool (after any running sync)."""
    configs = _known_configs([])
    try:
        operations.require_known(source, configs)
    except operations.UnknownSourceError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    try:
        request = operations.request_reset(source, triggered_by="rest_api", user=user.get_name())
    except operations.ResetUnavailableError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"cannot reset {source}: {exc}") from None
    response.headers.update(NO_STORE)
    return request.to_dict()


def _admin_dag_status() -> dict[str, Any]:
    from airflow.models.dag import DagModel

    model = DagModel.get_current(ADMIN_DAG_ID)
    return {
        "dag_id": ADMIN_DAG_ID,
        "present": model is not None,
        "paused": bool(model.is_paused) if model is not None else None,
    }


def _may_reset(user: Any) -> bool:
    """Whether ``user`` may reset (lets the page hide buttons that would answer 403)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.models.dag import DagModel

    return bool(
        get_auth_manager().is_authorized_dag(
            method="POST",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=ADMIN_DAG_ID, team_name=DagModel.get_team_name(ADMIN_DAG_ID)),
            user=user,
        )
    )
