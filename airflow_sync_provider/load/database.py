"""Create the PostgreSQL database a ``load`` connection names, if missing (compose's airflow-init).

    python -m airflow_sync_provider.load.database sync_warehouse

Connects to the server's ``postgres`` database with the connection's login; idempotent.
"""

from __future__ import annotations

import sys

from airflow_sync_provider.load.destination import postgres_url


def ensure_database(conn_id: str) -> bool:
    """Create the connection's database (its ``schema``) unless it exists; True when created."""
    import psycopg2
    from psycopg2 import sql

    url = postgres_url(conn_id)
    base, _, name = url.rpartition("/")
    con = psycopg2.connect(f"{base}/postgres")
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        con.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m airflow_sync_provider.load.database CONN_ID", file=sys.stderr)
        return 2
    created = ensure_database(argv[0])
    print(f"database of connection {argv[0]!r} {'created' if created else 'already exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
