"""Command line for the demo API: ``serve`` it, flip its ``fault`` switch, list active ``faults``.

python -m airflow_sync_provider.demo serve [--host 127.0.0.1] [--port 8765]
python -m airflow_sync_provider.demo fault outage --source quests --count 3
python -m airflow_sync_provider.demo fault none
python -m airflow_sync_provider.demo faults
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

from airflow_sync_provider.demo.catalog import DEFAULT_SOURCES
from airflow_sync_provider.demo.faults import MODES
from airflow_sync_provider.demo.server import DemoServer

DEFAULT_PORT = 8765
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_EXAMPLES = """\
examples:
  python -m airflow_sync_provider.demo serve
  python -m airflow_sync_provider.demo fault outage --source quests --count 3
  python -m airflow_sync_provider.demo fault rate_limit --retry-after=-5
  python -m airflow_sync_provider.demo fault none
  python -m airflow_sync_provider.demo faults
  curl 'http://127.0.0.1:8765/airdrops?limit=2'
"""
_MODE_HELP = """\
modes:
  none         clear faults (all, or only --source's own fault)
  outage       503, Retry-After only if --retry-after is given
  error        500
  rate_limit   429 with Retry-After (default "30"; any raw string; --no-retry-after omits it)
  slow         sleep --delay seconds (default 5) before answering normally
  trickle      valid body sent in --chunk-size byte chunks (default 256) every --delay s (default 1)
  malformed    200 with a non-JSON body
  wrong_shape  200 with {"data": 5}
  huge         200 with a valid body of --size-mb MiB (default 10)
  reset        headers and half the body, then a TCP reset
  loop         next_cursor and Link always point at cursor "0"
  redirect     302 to --location (default http://127.0.0.2:9/{source})
  not_found    404
  status       any --status-code (200-599), optional --retry-after
"""


class _Unreachable(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_sync_provider.demo",
        description="Demo HTTP API (paginated sources + runtime fault switch) for airflow-sync-provider.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the demo API in the foreground (Ctrl-C stops it)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port, 0 = any free (default: %(default)s)"
    )

    fault = sub.add_parser(
        "fault",
        help="set a fault on a running demo API",
        description="Set (or with 'none', clear) a fault on a running demo API and print its answer.",
        epilog=_MODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("mode", choices=MODES, metavar="MODE", help="one of: " + ", ".join(MODES))
    fault.add_argument("--source", help="only this source (default: every source)")
    fault.add_argument("--count", type=int, help="apply to the next N matching requests, then clear")
    retry = fault.add_mutually_exclusive_group()
    retry.add_argument("--retry-after", metavar="X", help="raw Retry-After header value")
    retry.add_argument("--no-retry-after", action="store_true", help="rate_limit without a Retry-After")
    fault.add_argument("--delay", type=float, metavar="S", help="seconds, for slow and trickle")
    fault.add_argument("--chunk-size", type=int, metavar="BYTES", help="trickle chunk size")
    fault.add_argument("--size-mb", type=float, metavar="N", help="body size in MiB, for huge")
    fault.add_argument("--status-code", type=int, metavar="N", help="HTTP status, for status")
    fault.add_argument("--location", metavar="URL", help="redirect target ({source} is substituted)")
    fault.add_argument("--url", default=DEFAULT_URL, help="demo API base URL (default: %(default)s)")

    faults = sub.add_parser("faults", help="list the active faults of a running demo API")
    faults.add_argument("--url", default=DEFAULT_URL, help="demo API base URL (default: %(default)s)")
    return parser


def _call(base_url: str, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One admin call; returns (status, decoded JSON or text). Raises _Unreachable if no answer."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        base_url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: ignore *_proxy
    try:
        with opener.open(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(f"cannot reach the demo API at {base_url}: {reason}") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _fault_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"mode": args.mode}
    if args.no_retry_after:
        spec["retry_after"] = None
    for name in (
        "source",
        "count",
        "retry_after",
        "delay",
        "chunk_size",
        "size_mb",
        "status_code",
        "location",
    ):
        value = getattr(args, name)
        if value is not None:
            spec[name] = value
    return spec


def _print_answer(status: int, answer: Any) -> int:
    print(json.dumps(answer, indent=2) if not isinstance(answer, str) else answer)
    return 0 if 200 <= status < 300 else 1


def _serve(host: str, port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if host not in _LOOPBACK:
        print(f"warning: {host} is not loopback; the /_admin endpoints have no auth", file=sys.stderr)
    server = DemoServer(host, port)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"demo API listening on {server.url} (sources: {', '.join(DEFAULT_SOURCES)}, ...)", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    print("demo API stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args.host, args.port)
    try:
        if args.command == "fault":
            return _print_answer(*_call(args.url, "POST", "/_admin/faults", _fault_spec(args)))
        return _print_answer(*_call(args.url, "GET", "/_admin/faults"))
    except _Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
