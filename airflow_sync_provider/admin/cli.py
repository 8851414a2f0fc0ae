"""``python -m airflow_sync_provider``: set up, inspect and reset sync sources from a shell.

Run it where the Airflow metadata DB is reachable (where ``airflow`` CLI commands work)::

    python -m airflow_sync_provider setup [--connection [URL]] [--replace-connection]
    python -m airflow_sync_provider states [--json]
    python -m airflow_sync_provider reset SOURCE [--wait]

Known sources are ``DEFAULT_SYNC_CONFIGS``, the sources file (``--sources-file``, else
``$SYNC_SOURCES_FILE``, else ``sources.yaml`` in Airflow's dags folder when present) and, for
``states``/``reset``, every ``sync_state_<source>`` Variable. Exit codes: 0 ok, 1 failure (DB,
reset did not finish), 2 usage error (unknown source, bad sources file, bad URL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from airflow_sync_provider.admin.metadata_db import missing_db_message

DEFAULT_CONNECTION_URL = "http://127.0.0.1:8765"
DEMO_URL_ENV = "SYNC_DEMO_URL"
CONN_ID = "sync_default"
LOG_LEVEL_ENV = "AIRFLOW__LOGGING__LOGGING_LEVEL"
_DEFAULT_URL = object()

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Failure(Exception):
    """A one-line error for the user, with the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_sync_provider",
        description=(
            "Set up, inspect and reset airflow-sync-provider sources. Needs the Airflow metadata DB "
            "(run it where `airflow` CLI commands work)."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Airflow's own info log lines on stderr (by default only its warnings)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sources_file_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--sources-file",
            metavar="PATH",
            help=(
                "sources YAML overriding/adding to the default sources "
                "(default: $SYNC_SOURCES_FILE, else sources.yaml in Airflow's dags folder if present)"
            ),
        )

    setup = sub.add_parser(
        "setup",
        help="create the pools (and optionally the connection) sync DAGs need; idempotent",
        description=(
            "Create or repair one pool sync_<source> (1 slot, deferred tasks included) per known source. "
            "Without these pools sync tasks stay 'scheduled' forever. Idempotent."
        ),
    )
    sources_file_arg(setup)
    setup.add_argument(
        "--connection",
        nargs="?",
        const=_DEFAULT_URL,
        default=None,
        metavar="URL",
        help=(
            f"also create the HTTP connection {CONN_ID} for URL (default: ${DEMO_URL_ENV}, "
            f"else {DEFAULT_CONNECTION_URL}); an existing one is kept"
        ),
    )
    setup.add_argument(
        "--replace-connection",
        action="store_true",
        help=f"with --connection: replace an existing {CONN_ID} connection",
    )

    states = sub.add_parser(
        "states",
        help="show every source's breaker, window usage and last result",
        description=(
            "Show every known source (defaults, sources file, sync_state_* Variables): breaker state, "
            "failure count, opened-at, next probe, window usage and last result. Warns on stderr "
            "about missing pools."
        ),
    )
    sources_file_arg(states)
    states.add_argument("--json", action="store_true", help="print a JSON list of states instead of a table")

    reset = sub.add_parser(
        "reset",
        help="reset a source's circuit breaker (through the sync_admin DAG)",
        description=(
            "Queue a sync_admin run that resets SOURCE's breaker in the pool sync_<source>, i.e. after "
            "any running sync of SOURCE, so the reset cannot be lost. Needs a running scheduler and an "
            "unpaused sync_admin DAG."
        ),
    )
    sources_file_arg(reset)
    reset.add_argument("source", metavar="SOURCE", help="the source whose breaker to close")
    reset.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="wait until the sync_admin run finishes (default: --no-wait)",
    )
    reset.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="with --wait: give up after this many seconds (default 600)",
    )
    # removed (a reset beside a running sync was lost); still parsed to say so clearly
    reset.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    return parser


# -- commands ------------------------------------------------------------------------------------


def cmd_setup(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_sync_provider.admin import operations, setup

    configs = operations.configured_sources(args.sources_file)
    for pool, status in setup.ensure_pools(configs.values()):
        print(f"pool {pool}: {status}", file=out)
    if args.connection is not None:
        url = args.connection
        if url is _DEFAULT_URL:
            url = os.environ.get(DEMO_URL_ENV) or DEFAULT_CONNECTION_URL
        try:
            status = setup.ensure_connection(CONN_ID, str(url), replace=args.replace_connection)
        except ValueError as exc:
            raise _Failure(str(exc), EXIT_USAGE) from None
        print(f"connection {CONN_ID}: {status} ({url})", file=out)
    elif args.replace_connection:
        raise _Failure("--replace-connection needs --connection", EXIT_USAGE)
    return EXIT_OK


def cmd_states(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_sync_provider.admin import operations, setup
    from airflow_sync_provider.state import reader as state_reader
    from airflow_sync_provider.state.table import format_states

    raw = state_reader.read_state_variables()  # every state in one query
    configs = operations.known_configs(
        args.sources_file, warn=lambda m: print(f"warning: {m}", file=err), state_sources=raw
    )
    states = state_reader.read_states(configs, raw=raw)
    if args.json:
        print(json.dumps(states, indent=2, sort_keys=True, default=str), file=out)
    else:
        print(format_states(states), file=out)
    missing = setup.missing_pools(configs.values())
    if missing:
        print(
            f"warning: missing pools {', '.join(missing)}: sync tasks of these sources stay 'scheduled' "
            "forever; run `python -m airflow_sync_provider setup`",
            file=err,
        )
    return EXIT_OK


def cmd_reset(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from airflow_sync_provider.admin import operations
    from airflow_sync_provider.state.table import format_states

    if args.direct:
        raise _Failure(
            f"reset --direct was removed: a reset written beside a running sync of {args.source} is lost "
            f"(the sync merges its own breaker state back). Run `reset {args.source} --wait`: it resets "
            f"in the pool sync_{args.source}, after any running sync",
            EXIT_USAGE,
        )
    configs = operations.known_configs(args.sources_file)
    try:
        operations.require_known(args.source, configs)
    except operations.UnknownSourceError as exc:
        raise _Failure(str(exc), EXIT_USAGE) from None

    try:
        request = operations.request_reset(args.source, triggered_by="cli", user=_os_user())
    except operations.ResetUnavailableError as exc:
        raise _Failure(f"cannot reset {args.source} through {operations.ADMIN_DAG_ID}: {exc}") from None
    print(
        f"queued reset of {args.source}: {request.dag_id} run {request.run_id} "
        f"(runs in pool sync_{args.source}, after any running sync)",
        file=out,
    )
    if request.dag_paused:
        print(
            f"warning: {request.dag_id} is paused; the reset runs once it is unpaused "
            f"(airflow dags unpause {request.dag_id})",
            file=err,
        )
    if not args.wait:
        return EXIT_OK
    state = operations.wait_for_run(request.dag_id, request.run_id, timeout=args.timeout)
    if state == "failed":
        raise _Failure(f"{request.dag_id} run {request.run_id} failed; see its task logs")
    if state != "success":
        raise _Failure(
            f"{request.dag_id} run {request.run_id} is still {state or 'missing'} after {args.timeout:g}s; "
            "the reset happens when it runs"
        )
    final = operations.list_states({args.source: configs[args.source]})
    print(f"reset {args.source}: done", file=out)
    print(format_states(final), file=out)
    return EXIT_OK


def _os_user() -> str | None:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return None


COMMANDS = {"setup": cmd_setup, "states": cmd_states, "reset": cmd_reset}


def _db_error(exc: BaseException) -> str:
    try:
        from airflow.configuration import conf
        from sqlalchemy.engine import make_url

        where = make_url(conf.get("database", "sql_alchemy_conn")).render_as_string(hide_password=True)
    except Exception:
        where = "(unknown)"
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return f"cannot use the Airflow metadata DB at {where}: {reason} (is it running and migrated?)"


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    quiet_airflow: bool = False,
) -> int:
    """Run one command; returns the exit code.

    :param quiet_airflow: limit Airflow's logging to warnings (``run()``, i.e. ``python -m``, does).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    typed = " ".join(argv if argv is not None else sys.argv[1:])
    missing = missing_db_message(os.environ, typed, Path.cwd())
    if missing is not None:  # checked before Airflow is imported: importing it creates ~/airflow
        print(f"error: {missing}", file=err)
        return EXIT_FAILED
    if quiet_airflow and not args.verbose:
        # Airflow logs info lines (e.g. "creating dag run"); show only its warnings. Must happen
        # before the first airflow import, which configures logging.
        os.environ[LOG_LEVEL_ENV] = "WARNING"
    from sqlalchemy.exc import SQLAlchemyError

    from airflow_sync_provider.sources_file import SourcesFileError

    try:
        # Airflow's loggers write to whatever sys.stdout is when they are set up (at its import, and
        # lazily after): point that at stderr so stdout carries only our output (tables, JSON).
        with contextlib.redirect_stdout(err):
            return COMMANDS[args.command](args, out, err)
    except _Failure as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    except SourcesFileError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        print(f"error: {_db_error(exc)}", file=err)
        return EXIT_FAILED


def _leave_out_the_checkout() -> None:
    """``python -m`` puts the working directory first on ``sys.path``. In this project's checkout its
    build metadata (``airflow_sync_provider.egg-info``) sits there beside the installed package's, so
    Airflow found our plugin twice ("Plugin 'sync_provider' already registered"). The installed package
    is all the CLI needs."""
    cwd = Path.cwd()
    if (cwd / "airflow_sync_provider.egg-info").is_dir():
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != cwd]


def run(argv: Sequence[str] | None = None) -> None:
    _leave_out_the_checkout()
    try:
        code = main(argv, quiet_airflow=True)
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)
