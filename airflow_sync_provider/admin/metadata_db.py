"""Is there an Airflow metadata DB where the CLI would look? Answered before Airflow is imported.

Importing Airflow with no ``AIRFLOW_HOME`` creates ``~/airflow`` (config, logs) and opening a SQLite
URL creates an empty ``airflow.db``; ``states`` then failed with "no such table: variable". This reads
the DB URL the way Airflow would (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, else ``[database]
sql_alchemy_conn`` in ``$AIRFLOW_CONFIG`` or ``$AIRFLOW_HOME/airflow.cfg``, else the default SQLite
file in the home) and, for a SQLite file that does not exist, says what to set. Other databases are
not checked here (a server that does not answer is reported when the command connects).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

CONN_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
DEMO_HOME = ".airflow"


def _configured_url(environ: Mapping[str, str], home: Path) -> str | None:
    """The DB URL from the environment or the config file; None when it comes from a command/secret."""
    if CONN_ENV in environ:
        return environ[CONN_ENV]
    if any(f"{CONN_ENV}_{how}" in environ for how in ("CMD", "SECRET")):
        return None
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(environ.get("AIRFLOW_CONFIG") or home / "airflow.cfg"))
    if parser.has_option("database", "sql_alchemy_conn"):
        return parser.get("database", "sql_alchemy_conn")
    return f"sqlite:///{home / 'airflow.db'}"


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def missing_db_message(environ: Mapping[str, str], command: str, cwd: Path) -> str | None:
    """What to set, when the metadata DB the CLI would use is a SQLite file that does not exist."""
    home_env = environ.get("AIRFLOW_HOME")
    home = Path(home_env).expanduser() if home_env else Path(environ.get("HOME") or Path.home()) / "airflow"
    url = _configured_url(environ, home)
    path = _sqlite_file(url) if url else None
    if path is None or path.exists():
        return None
    where = f"AIRFLOW_HOME={home_env}" if home_env else "AIRFLOW_HOME is not set, so ~/airflow"
    demo = f"AIRFLOW_HOME={DEMO_HOME} python -m airflow_sync_provider {command}"
    hint = (
        f"for the demo started here: {demo}"
        if (cwd / DEMO_HOME / "airflow.db").exists()
        else f"for `make demo`, from the repository's directory: {demo}"
    )
    return (
        f"no Airflow metadata DB at {path} ({where}); nothing was created. Set AIRFLOW_HOME to the home "
        f"of your Airflow (where `airflow` CLI commands work) or {CONN_ENV}; {hint}"
    )
