"""What the CLI and the dashboard do: find every known source, read its state, request a reset.

Outside tasks (CLI, api-server plugin) there is no Execution API, so everything here uses the
metadata DB directly (``airflow.models``). Nothing runs at import time.

A reset is *requested*, not performed: it becomes a manual run of the ``sync_admin`` DAG whose
task ``reset_breaker_<source>`` runs in the pool ``sync_<source>``, the pool every sync of that
source runs in. So the reset waits for a running sync and cannot be overwritten by it. There is no
direct path: a reset written beside a running sync would be merged away by it (the more severe
breaker state wins a merge).

The admin API of the original design (``RateLimitedSyncHook.get_circuit_breaker_state``,
``get_all_states``, ``reset_circuit_breaker``) delegates to ``describe``, ``breaker_state`` and
``reset_breaker`` here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_sync_provider.admin_names import ADMIN_DAG_ID, RESET_ACTION, reset_task_id
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.exceptions import SyncStateError
from airflow_sync_provider.sources_file import SOURCES_FILE_ENV, load_sources
from airflow_sync_provider.state import VARIABLE_PREFIX, SourceState, StateStore

Log = Any

SOURCES_FILE_NAME = "sources.yaml"
FINISHED_RUN_STATES = ("success", "failed")


class UnknownSourceError(LookupError):
    """A source that is neither configured nor has state; the message names the known ones."""

    def __init__(self, source: str, known: Iterable[str]) -> None:
        self.source = source
        self.known = sorted(known)
        super().__init__(f"unknown source {source!r}; known sources: {', '.join(self.known) or '(none)'}")


class ResetUnavailableError(RuntimeError):
    """The ``sync_admin`` DAG cannot reset this source (not deployed, or the source is not in it)."""


@dataclass(frozen=True)
class ResetRequest:
    """A queued ``sync_admin`` run that will reset ``source``'s breaker."""

    source: str
    dag_id: str
    run_id: str
    dag_paused: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dag_id": self.dag_id,
            "dag_run_id": self.run_id,
            "dag_paused": self.dag_paused,
        }


# -- which sources exist --------------------------------------------------------------------------


def sources_file_path(explicit: str | Path | None = None) -> Path | None:
    """The sources file: ``explicit``, else ``$SYNC_SOURCES_FILE``, else ``<dags folder>/sources.yaml``.

    Returns None when none is given and the dags folder has no ``sources.yaml``.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(SOURCES_FILE_ENV):
        return Path(os.environ[SOURCES_FILE_ENV])
    from airflow.configuration import conf

    dags_folder = conf.get("core", "dags_folder", fallback="")
    candidate = Path(dags_folder) / SOURCES_FILE_NAME if dags_folder else None
    return candidate if candidate is not None and candidate.is_file() else None


def configured_sources(
    sources_file: str | Path | None = None, *, read_file: bool = True
) -> dict[str, SyncConfig]:
    """``DEFAULT_SYNC_CONFIGS`` overlaid with the sources file (see ``sources_file_path``).

    :raises SourcesFileError: the file is unreadable or invalid (``read_file=False`` skips it).
    """
    configs = dict(DEFAULT_SYNC_CONFIGS)
    path = sources_file_path(sources_file) if read_file else None
    if path is not None:
        configs.update(load_sources(path))
    return configs


def state_variable_sources() -> list[str]:
    """Sources that have a ``sync_state_<source>`` Variable in the metadata DB."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = session.query(Variable.key).filter(Variable.key.like(f"{VARIABLE_PREFIX}%")).all()
    return sorted({key.removeprefix(VARIABLE_PREFIX) for (key,) in keys if key.startswith(VARIABLE_PREFIX)})


def known_configs(
    sources_file: str | Path | None = None,
    *,
    warn: Callable[[str], None] | None = None,
    read_file: bool = True,
    state_sources: Iterable[str] | None = None,
) -> dict[str, SyncConfig]:
    """Every known source: configured ones plus every ``sync_state_*`` Variable (with default settings).

    :param state_sources: the sources that have a state Variable, if already read (saves a query).
    """
    configs = configured_sources(sources_file, read_file=read_file)
    for source in sorted(state_variable_sources() if state_sources is None else state_sources):
        if source in configs:
            continue
        try:
            configs[source] = SyncConfig(source=source)
        except ValueError as exc:
            if warn is not None:
                warn(f"ignoring Variable {VARIABLE_PREFIX}{source}: not a valid source name ({exc})")
    return dict(sorted(configs.items()))


def require_known(source: str, configs: Mapping[str, SyncConfig]) -> SyncConfig:
    config = configs.get(source)
    if config is None:
        raise UnknownSourceError(source, configs)
    return config


# -- states -----------------------------------------------------------------------------------------


def hook_for(configs: Mapping[str, SyncConfig]) -> Any:
    """A ``RateLimitedSyncHook`` reading state through ``airflow.models.Variable`` (no Execution API)."""
    from airflow.models import Variable

    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
    from airflow_sync_provider.state import VariableStateStore

    return RateLimitedSyncHook(store=VariableStateStore(variable_api=Variable), configs=configs)


def list_states(configs: Mapping[str, SyncConfig]) -> list[dict[str, Any]]:
    """``describe()`` of every source; a state this provider cannot read becomes an ``error`` row."""
    hook = hook_for(configs)
    rows = []
    for source, config in sorted(configs.items()):
        try:
            rows.append(hook.get_circuit_breaker_state(source))
        except SyncStateError as exc:
            rows.append(_error_row(source, config, str(exc)))
    return rows


def _error_row(source: str, config: SyncConfig, message: str) -> dict[str, Any]:
    return {
        "source": source,
        "state": "error",
        "failure_count": 0,
        "failure_threshold": config.circuit_breaker.failure_threshold,
        "opened_at": None,
        "next_probe_at": None,
        "last_error": message,
        "last_failure_at": None,
        "window_requests": 0,
        "window_max_requests": config.rate_limit.max_requests,
        "window_usage": 0.0,
        "window_seconds": config.rate_limit.window.total_seconds(),
        "last_result": None,
        "updated_at": None,
    }


def describe(state: SourceState, config: SyncConfig, now: float) -> dict[str, Any]:
    """A source's state as plain JSON for logs, dashboards and the CLI."""
    from airflow_sync_provider import learned_windows
    from airflow_sync_provider.hooks.guard import breaker_settings
    from airflow_sync_provider.policy import quota

    b = state.breaker
    in_window, most, seconds = learned_windows.tightest(state, config, now)  # the fullest, learned included
    cap = config.rate_limit.learned_wait_cap.total_seconds()
    learned = quota.current(state.quota, now, cap) if config.rate_limit.learn_from_headers else None
    return {
        "source": state.source,
        "state": b.state.value,
        "failure_count": b.failure_count,
        "failure_threshold": config.circuit_breaker.failure_threshold,
        "opened_at": b.opened_at,
        "next_probe_at": b.next_probe_at(breaker_settings(config)),
        "last_error": b.last_error,
        "last_failure_at": b.last_failure_at,
        "window_requests": in_window,
        "window_max_requests": most,
        "window_usage": in_window / most,
        "window_seconds": seconds,
        "api_remaining": learned.remaining if learned else None,
        "api_limit": learned.limit if learned else None,
        "api_reset_at": learned.reset_at if learned else None,
        "learned_windows": learned_windows.shown(state, config, now),
        "last_result": state.last_result,
        "updated_at": state.updated_at,
        **describe_resources(state, config),
    }


def describe_resources(state: SourceState, config: SyncConfig) -> dict[str, Any]:
    """``{"resources": [{name, last_result, bookmark}, ...]}`` in config order for a source with
    resources (the breaker and window above are the source's, shared by all); ``{}`` without."""
    if not config.resources:
        return {}
    return {
        "resources": [
            {
                "name": name,
                "last_result": state.resources.get(name, {}).get("last_result"),
                "bookmark": state.resources.get(name, {}).get("bookmark"),
            }
            for name in config.resource_names
        ]
    }


def breaker_state(
    store: StateStore, source: str, configs: Mapping[str, SyncConfig], now: float
) -> dict[str, Any]:
    """``describe`` of ``source``'s stored state (default settings for a source not in ``configs``)."""
    return describe(store.load(source), configs.get(source) or SyncConfig(source=source), now)


def all_states(store: StateStore, configs: Mapping[str, SyncConfig], now: float) -> dict[str, dict[str, Any]]:
    """``breaker_state`` of every source in ``configs``."""
    return {source: breaker_state(store, source, configs, now) for source in sorted(configs)}


def reset_breaker(store: StateStore, source: str, now: float, *, log: Log, writer: str | None = None) -> None:
    """Close ``source``'s breaker, clear its count and forget the quota learned from the API (run it in
    the pool ``sync_<source>``): the next sync sends, and learns the quota again from the answer."""
    from airflow_sync_provider.policy import breaker

    state = store.load(source, on_warning=log.warning)
    snapshot, moved = breaker.reset(state.breaker, now)
    if moved is not None:
        log.warning("Circuit breaker of %s: %s -> closed (manual reset)", source, moved.source_state.value)
    if state.quota is not None:
        log.warning("%s: the quota learned from the API is cleared (manual reset): %s", source, state.quota)
    saved = state.replace(breaker=snapshot, quota=None, updated_at=now, writer=writer or "reset")
    store.save(saved)


# -- reset through sync_admin ------------------------------------------------------------------------


def request_reset(
    source: str,
    *,
    triggered_by: str = "cli",
    user: str | None = None,
    dag_id: str = ADMIN_DAG_ID,
) -> ResetRequest:
    """Queue a ``sync_admin`` run with conf ``{"source": source, "action": "reset_breaker"}``.

    The same code path as ``airflow dags trigger`` (``airflow.api.common.trigger_dag``).

    :param triggered_by: a ``DagRunTriggeredByType`` value: ``cli`` or ``rest_api``.
    :raises ResetUnavailableError: the admin DAG is not in the DB or has no reset task for ``source``.
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        model = DagModel.get_current(dag_id, session=session)
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session) if model is not None else None
        if model is None or dag is None:
            raise ResetUnavailableError(
                f"the {dag_id} DAG is not in the metadata DB (deploy dags/sync_sources.py and let the "
                "dag-processor parse it)"
            )
        if not dag.has_task(reset_task_id(source)):
            raise ResetUnavailableError(
                f"the {dag_id} DAG has no task {reset_task_id(source)}: {source!r} is not in the sources "
                f"file it was built from"
            )
        paused = bool(model.is_paused)
    run = trigger_dag(
        dag_id,
        triggered_by=DagRunTriggeredByType(triggered_by),
        triggering_user_name=user,
        conf={"source": source, "action": RESET_ACTION},
        note=f"breaker reset of {source} requested by {user or 'unknown'} via {triggered_by}",
    )
    if run is None:  # pragma: no cover - trigger_dag returns the run or raises
        raise ResetUnavailableError(f"{dag_id}: no run was created")
    return ResetRequest(source=source, dag_id=dag_id, run_id=run.run_id, dag_paused=paused)


def run_state(dag_id: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        return None if run is None else str(getattr(run.state, "value", run.state))


def wait_for_run(
    dag_id: str,
    run_id: str,
    *,
    timeout: float,
    poll: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Poll until the run finishes or ``timeout`` seconds pass; returns its last state."""
    deadline = clock() + timeout
    while True:
        state = run_state(dag_id, run_id)
        if state in FINISHED_RUN_STATES or clock() >= deadline:
            return state
        sleep(poll)
