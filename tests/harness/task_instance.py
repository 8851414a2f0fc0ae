"""A task instance for running an operator's ``execute`` in-process: ids and the XComs it pushes."""

from __future__ import annotations

from typing import Any


class FakeTI:
    def __init__(self, dag_id: str = "sync_test", run_id: str = "manual__1", task_id: str = "sync") -> None:
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, task_id
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value
