"""The names the ``sync_admin`` DAG is addressed by: its id, its actions, its reset task ids.

Shared by the DAG, the CLI and dashboard (which queue resets) and the scheduler's pool guard.
Kept free of Airflow imports so those callers do not load DAG-building code.
"""

from __future__ import annotations

ADMIN_DAG_ID = "sync_admin"
SHOW_ACTION = "show_states"
RESET_ACTION = "reset_breaker"
ACTIONS = (SHOW_ACTION, RESET_ACTION)
RESET_TASK_PREFIX = f"{RESET_ACTION}_"


def reset_task_id(source: str) -> str:
    """The ``sync_admin`` task that resets ``source`` (it runs in the pool ``sync_<source>``)."""
    return f"{RESET_TASK_PREFIX}{source}"
