"""The trigger form at parse cost close to plain DAGs: same fields and limits, schemas checked once.

``build_sync_dags`` attaches the form's Params after the tasks (as ``dag.param()`` does) instead of
``DAG(params=...)``, which re-checks every schema against its meta-schema per DAG. These tests pin
what users and the api-server see (the serialized DAG) and that the check runs once per distinct limits.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from airflow.serialization.serialized_objects import DagSerialization

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.authoring.dag_factory import _form_specs
from airflow_sync_provider.config import RateLimitConfig, SyncConfig

DRAFT_7 = "http://json-schema.org/draft-07/schema#"


def serialized_params(config: SyncConfig) -> dict[str, dict[str, Any]]:
    dag = build_sync_dags([config])[f"sync_{config.source}"]
    data = DagSerialization.to_dict(dag)["dag"]
    return {name: param for name, param in data["params"]}


def test_the_serialized_dag_carries_every_field_with_its_limits() -> None:
    config = SyncConfig(
        source="form_a",
        rate_limit=RateLimitConfig(max_requests=7),
        max_retries=2,
        max_pages=9,
    )
    params = serialized_params(config)
    assert list(params) == ["dry_run", "max_requests", "max_retries", "max_pages"]
    schemas = {name: p["schema"]["__var"] for name, p in params.items()}
    assert schemas["dry_run"] == {"$schema": DRAFT_7, "type": "boolean", "title": "Dry run"}
    limits = {n: (s["type"], s["minimum"], s["maximum"]) for n, s in schemas.items() if n != "dry_run"}
    assert limits == {
        "max_requests": (["null", "integer"], 1, 7),
        "max_retries": (["null", "integer"], 0, 2),
        "max_pages": (["null", "integer"], 1, 9),
    }
    assert {n: p["default"] for n, p in params.items()} == {
        "dry_run": False,
        "max_requests": None,
        "max_retries": None,
        "max_pages": None,
    }
    assert "configured limit is 7" in params["max_requests"]["description"]
    assert all(p["__class"] == "airflow.sdk.definitions.param.Param" for p in params.values())


def test_each_dag_gets_its_own_param_objects() -> None:
    """A run's params resolve (mutate) the DAG's Param objects: DAGs must not share them."""
    dags = build_sync_dags([SyncConfig(source="form_b"), SyncConfig(source="form_c")])
    b, c = dags["sync_form_b"].params, dags["sync_form_c"].params
    for name in b:
        assert b.get_param(name) is not c.get_param(name)
        assert b.get_param(name).schema is not c.get_param(name).schema


def test_schemas_are_checked_once_per_distinct_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's check of the defaults runs once per set of limits, not four times per DAG."""
    _form_specs.cache_clear()
    calls = []
    real = jsonschema.validate
    monkeypatch.setattr(jsonschema, "validate", lambda *a, **k: calls.append(a) or real(*a, **k))
    same = [SyncConfig(source=f"form_same_{i}") for i in range(40)]
    build_sync_dags(same)
    assert len(calls) == 4  # one set of limits: its four params, once
    build_sync_dags([SyncConfig(source="form_other", max_pages=3)])
    assert len(calls) == 8
