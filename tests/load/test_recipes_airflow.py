"""The page-number recipe of docs/recipes.md in real Airflow (``airflow dags test``) against the Harvest
emulation: a 429 with ``Retry-After: 6`` on page 2 defers the task (``defer_after`` 5 s), the triggerer
resumes it at page 2, and every time entry lands in DuckDB once; the bookmark is in the state Variable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.apis import Harvest
from tests.harness.airflow_cli import dags_test, install_dag
from tests.load.recipes import connection_env, local, recipe

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")
pytestmark = pytest.mark.airflow


def test_page_number_recipe_defers_and_lands_every_entry_in_real_airflow(
    airflow_db: None, stored_variables: Any
) -> None:
    rec = recipe("A page-number API")
    install_dag(Path(__file__).with_name("dags") / "recipe_dags.py", "recipe_dags.py")
    source = rec.config.source
    database = Path(os.environ["AIRFLOW_HOME"]) / "sync_data" / f"{source}.duckdb"
    database.unlink(missing_ok=True)
    with Harvest(250) as api:
        api.throttle_at(2, retry_after=6)
        conn = local(rec.connection, api.url, password=api.token)
        env = {**connection_env(rec.config.conn_id, conn), "SYNC_TEST_RECIPE_YAML": rec.yaml_text}
        run = dags_test(f"sync_{source}", **env)

    assert run.state == "success", run.output[-4000:]
    assert [s.query.get("page") for s in api.log] == ["1", "2", "2", "3"]
    assert f"{source}: deferring for 6.0s" in run.output
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.sql("select id, hours from sync.time_entries order by id").fetchall()
    assert rows == [(e["id"], e["hours"]) for e in api.entries]
    state = json.loads(stored_variables.get(f"sync_state_{source}"))
    assert state["bookmark"] == max(e["updated_at"] for e in api.entries)
