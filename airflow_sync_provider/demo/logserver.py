"""The demo's task-log servers, bound to loopback like its api-server.

Airflow's scheduler and triggerer each start a log server on every interface (``0.0.0.0`` / ``[::]``,
not configurable); the api-server reads the logs of running and deferred tasks from them. The demo
starts those two with ``--skip-serve-logs`` and runs Airflow's log server app here on 127.0.0.1
instead, and names tasks' host ``127.0.0.1`` (``[core] hostname_callable``) so the api-server asks there.

    python -m airflow_sync_provider.demo.logserver --port 8793
"""

from __future__ import annotations

import argparse

LOOPBACK = "127.0.0.1"
HOSTNAME_CALLABLE = f"{__name__}.loopback_hostname"


def loopback_hostname() -> str:
    """The host recorded on task instances and triggerer jobs in the demo (``hostname_callable``)."""
    return LOOPBACK


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Airflow's task-log server on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(
        "airflow.utils.serve_logs.log_server:get_app",
        host=LOOPBACK,
        port=args.port,
        log_level="warning",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
