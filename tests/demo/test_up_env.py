"""``make demo``'s environment: the settings that keep Airflow's start-up warnings a user cannot act
on out of the demo (HMAC key length, "looks like production", starlette's httpx deprecation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from airflow_sync_provider.demo.up import _env, write_config

# starlette's own words (starlette/testclient.py, when httpx2 is not installed)
WARN_CHECK = (
    "import warnings; warnings.warn('Using `httpx` with `starlette.testclient` is deprecated; "
    "install `httpx2` instead.', UserWarning)"
)


def test_secrets_are_long_random_and_kept_per_home(tmp_path: Path) -> None:
    env = _env(tmp_path, tmp_path / "dags", 8080, "http://127.0.0.1:8765")
    # HS512 wants a key of at least 64 bytes; PyJWT warns (InsecureKeyLengthWarning) below that.
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"].encode()) >= 64
    assert env["AIRFLOW__API__SECRET_KEY"]
    again = _env(tmp_path, tmp_path / "dags", 8080, "http://127.0.0.1:8765")
    assert again["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]  # tokens survive
    (tmp_path / "other").mkdir()
    other = _env(tmp_path / "other", tmp_path / "dags", 8080, "http://127.0.0.1:8765")
    assert other["AIRFLOW__API_AUTH__JWT_SECRET"] != env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert (tmp_path / "demo-secrets.json").stat().st_mode & 0o077 == 0


def test_loopback_sqlite_local_executor_is_not_production_shaped(tmp_path: Path) -> None:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    env = _env(tmp_path, tmp_path / "dags", 8080, "http://127.0.0.1:8765")
    assert not SimpleAuthManager._looks_like_production(
        sql_conn=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        api_host=env["AIRFLOW__API__HOST"],
        executor=env["AIRFLOW__CORE__EXECUTOR"],
    )


def test_the_httpx_deprecation_is_filtered_in_the_demo_only(tmp_path: Path) -> None:
    env = _env(tmp_path, tmp_path / "dags", 8080, "http://127.0.0.1:8765")
    plain = {k: v for k, v in env.items() if k != "PYTHONWARNINGS"}
    noisy = subprocess.run([sys.executable, "-c", WARN_CHECK], env=plain, capture_output=True, text=True)
    quiet = subprocess.run([sys.executable, "-c", WARN_CHECK], env=env, capture_output=True, text=True)
    assert "starlette.testclient` is deprecated" in noisy.stderr
    assert quiet.returncode == 0 and "deprecated" not in quiet.stderr


def test_the_home_config_names_the_dags_folder_and_db_for_the_banner_commands(tmp_path: Path) -> None:
    """``AIRFLOW_HOME=.airflow python -m airflow_sync_provider states`` reads the demo's sources and DB."""
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    env = {"AIRFLOW_HOME": str(home), "PATH": "/usr/bin:/bin"}
    write_config(home, dags)
    code = "from airflow.configuration import conf; print(conf.get('core', 'dags_folder')); " + (
        "print(conf.get('database', 'sql_alchemy_conn'))"
    )
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert got.stdout.split() == [str(dags), f"sqlite:///{home}/airflow.db?timeout=30"]

    # a home Airflow wrote its defaults into (an earlier demo): only these two lines change
    (home / "airflow.cfg").write_text(
        f"[core]\n# where DAGs are\ndags_folder = {home}/dags\nparallelism = 32\n\n"
        f"[database]\nsql_alchemy_conn = sqlite:///{home}/airflow.db\n"
    )
    write_config(home, dags)
    assert (home / "airflow.cfg").read_text() == (
        f"[core]\n# where DAGs are\ndags_folder = {dags}\nparallelism = 32\n\n"
        f"[database]\nsql_alchemy_conn = sqlite:///{home}/airflow.db?timeout=30\n"
    )
