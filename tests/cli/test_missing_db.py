"""``python -m airflow_sync_provider`` where there is no metadata DB: one line saying what to set,
and nothing created (no ``~/airflow``, no empty ``airflow.db``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_sync_provider.admin.metadata_db import missing_db_message


def run_cli(tmp: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return subprocess.run(
        [sys.executable, "-m", "airflow_sync_provider", *args],
        capture_output=True,
        text=True,
        env={**clean, "HOME": str(tmp / "user"), **env},
        cwd=cwd or tmp,
        timeout=120,
        check=False,
    )


def test_states_without_airflow_home_says_what_to_set_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "user").mkdir()
    proc = run_cli(tmp_path, "states")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: no Airflow metadata DB at {tmp_path}/user/airflow/airflow.db (AIRFLOW_HOME is not set, "
        "so ~/airflow); nothing was created. Set AIRFLOW_HOME to the home of your Airflow (where `airflow` "
        "CLI commands work) or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN; for `make demo`, from the repository's "
        "directory: AIRFLOW_HOME=.airflow python -m airflow_sync_provider states"
    ]
    assert list((tmp_path / "user").iterdir()) == []


def test_a_home_without_a_db_is_named_and_left_empty(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = run_cli(tmp_path, "reset", "airdrops", AIRFLOW_HOME=str(home))
    assert proc.returncode == 1
    assert f"no Airflow metadata DB at {home}/airflow.db (AIRFLOW_HOME={home})" in proc.stderr
    assert "AIRFLOW_HOME=.airflow python -m airflow_sync_provider reset airdrops" in proc.stderr
    assert list(home.iterdir()) == [] and not (tmp_path / "user").exists()


def test_in_the_demo_directory_the_hint_is_the_exact_command(tmp_path: Path) -> None:
    (tmp_path / ".airflow").mkdir()
    (tmp_path / ".airflow" / "airflow.db").touch()
    message = missing_db_message({"HOME": str(tmp_path / "user")}, "states --json", tmp_path)
    assert message is not None
    assert message.endswith(
        "for the demo started here: AIRFLOW_HOME=.airflow python -m airflow_sync_provider states --json"
    )


def test_an_existing_db_or_another_database_is_left_to_the_command(tmp_path: Path) -> None:
    (tmp_path / "airflow.db").touch()
    assert missing_db_message({"AIRFLOW_HOME": str(tmp_path)}, "states", tmp_path) is None
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[database]\nsql_alchemy_conn = postgresql://u@db/airflow\n")
    assert (
        missing_db_message({"AIRFLOW_HOME": str(tmp_path / "x"), "AIRFLOW_CONFIG": str(cfg)}, "s", tmp_path)
        is None
    )
    url = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/other.db?timeout=30"}
    assert f"no Airflow metadata DB at {tmp_path}/other.db " in (missing_db_message(url, "s", tmp_path) or "")


REPO = Path(__file__).resolve().parents[2]
PLUGIN_ERRORS = (
    "import sys; from airflow_sync_provider.admin.cli import _leave_out_the_checkout; "
    "_leave_out_the_checkout() if sys.argv[1] == 'cli' else None; "
    "from airflow import plugins_manager; print(sorted(plugins_manager.get_import_errors().values()))"
)


def test_from_the_checkout_our_plugin_is_registered_once() -> None:
    """``python -m`` from the repository (``make demo``'s banner commands): no "already registered"."""
    if not (REPO / "airflow_sync_provider.egg-info").is_dir():
        pytest.skip("no build metadata in the checkout (not an editable install)")

    def errors(mode: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", PLUGIN_ERRORS, mode], capture_output=True, text=True, cwd=REPO, check=True
        )
        return proc.stdout.strip().splitlines()[-1]

    assert "already registered" in errors("plain")  # what `python -m` in the checkout did
    assert errors("cli") == "[]"
