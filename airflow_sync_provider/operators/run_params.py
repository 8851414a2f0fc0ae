"""A run's own settings: the operator's config with the run's trigger params applied (``params``),
narrowed to the task's resource, and whether the run is a dry run or a full refresh."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_sync_provider.authoring.params import apply_params, full_refresh_requested, run_overrides
from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncConfigError


@dataclass(frozen=True)
class RunParams:
    config: SyncConfig
    """What this run syncs with: the operator's config, its params applied, for its resource."""
    dry_run: bool
    full_refresh: bool


def read_run_params(config: SyncConfig, resource: str | None, context: Mapping[str, Any]) -> RunParams:
    """The run's ``RunParams``; invalid trigger params fail the task, naming the field and the value."""
    try:
        overrides = run_overrides(context)
        run_config, dry_run = apply_params(config, overrides)
        if resource is not None:
            run_config = run_config.for_resource(resource)
        return RunParams(run_config, dry_run, full_refresh_requested(overrides))
    except SyncConfigError as exc:
        raise AirflowFailException(f"{config.source}: invalid trigger params: {exc}") from None


def writer_id(context: Mapping[str, Any]) -> str | None:
    """``dag_id/run_id`` of the running task: the ``writer`` of its state writes."""
    run = context.get("dag_run")
    dag_id = getattr(run, "dag_id", None)
    run_id = getattr(run, "run_id", None) or context.get("run_id")
    if not run_id:
        return None
    return f"{dag_id}/{run_id}" if dag_id else str(run_id)
