"""The promise, checked from the API's own request log and the stored state.

Each check returns violation messages (empty when the promise holds); the state machine raises on
the first one. Names (``CHECKS``) let a measurement run enforce one check alone (``MODEL_ONLY``).

The window rule, precisely: every request on the wire is judged against ``max_requests`` of the run
that sent it (its DAG's config, tightened by the run's params), counting every request of every run of
the source that arrived at the API in the trailing window ``(arrival - window, arrival]``, itself
included. A run with a larger limit may legitimately fill the window further; a run with a smaller one
may not send into it. A sync outside the pool (a second writer) may overshoot by one request, the one
it decides on a stale state before its save detects the foreign write (issue 10, item 9); with leased
slots (issue 20), by the slots of the one write that stale state missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from airflow_sync_provider.policy.breaker import LEGAL_TRANSITIONS, BreakerState, Transition
from airflow_sync_provider.results import SyncErrorKind
from tests.model.driver import COLLECTIONS, Sync
from tests.model.scripted_api import HOST, INVALID_FAULTS, ScriptedApi, Wire

CHECKS = (
    "window",
    "offsite",
    "open_sends",
    "transitions",
    "probe",
    "half_open_success",
    "items",
    "reread",
    "explained",
    "truncated",
    "open_wait",
)
EPS = 1e-6

# which scripted replies explain a failed sync's error kind
EXPLAINED_BY: dict[str, frozenset[str]] = {
    SyncErrorKind.INVALID_RESPONSE.value: INVALID_FAULTS,
    SyncErrorKind.HTTP_ERROR.value: frozenset({"500", "503", "408", "404"}),
    SyncErrorKind.RATE_LIMITED.value: frozenset({"429"}),
    SyncErrorKind.TIMEOUT.value: frozenset({"timeout"}),
    SyncErrorKind.CONNECTION_ERROR.value: frozenset({"bad_location"}),
    SyncErrorKind.HANDLER_ERROR.value: frozenset(),
}
BLOCKED = {SyncErrorKind.CIRCUIT_BREAKER_OPEN.value, SyncErrorKind.RATE_LIMIT_EXCEEDED.value}


def window(
    log: Sequence[Wire], start: int, seconds: float, outside: set[int], stale_slots: int = 1
) -> list[str]:
    """Requests ``log[start:]``: none arrived into a trailing window already at its sender's limit.

    A sync outside the pool may overshoot by ``stale_slots``: what the one write its stale read
    missed had reserved (one slot, or one lease's)."""
    out = []
    for i in range(start, len(log)):
        wire = log[i]
        in_window = [w for w in log[: i + 1] if w.at > wire.at - seconds + EPS]
        allowed = wire.limit + (stale_slots if wire.sync in outside else 0)
        if len(in_window) > allowed:
            spacing = wire.at - in_window[0].at
            out.append(
                f"request {i} ({wire.path}, sync {wire.sync}, limit {wire.limit}) arrived with "
                f"{len(in_window)} requests in the trailing {seconds:g}s window (first {spacing:.3f}s "
                f"earlier): {[(w.sync, w.path, w.kind) for w in in_window]}"
            )
    return out


def offsite(log: Sequence[Wire], start: int) -> list[str]:
    return [
        f"request {i} went to another host: {w.host}{w.path}"
        for i, w in enumerate(log)
        if i >= start and w.host != HOST
    ]


def transitions(recorded: Iterable[tuple[Transition, int]]) -> list[str]:
    """Only legal edges; a probe closes the breaker only on a usable answer; no sync resets it."""
    out = []
    for moved, _ in recorded:
        edge = (moved.source_state, moved.target_state)
        if edge not in LEGAL_TRANSITIONS:
            out.append(f"illegal breaker transition {edge} ({moved.reason})")
        manual = moved.reason == "manual reset"
        if edge == (BreakerState.OPEN, BreakerState.CLOSED) and not manual:
            out.append(f"a sync moved the breaker open -> closed ({moved.reason})")
    return out


def half_open_success(recorded: Iterable[tuple[Transition, int]], log: Sequence[Wire]) -> list[str]:
    out = []
    for moved, at in recorded:
        if (moved.source_state, moved.target_state) != (BreakerState.HALF_OPEN, BreakerState.CLOSED):
            continue
        if moved.reason == "manual reset":
            continue
        last = log[at - 1] if at > 0 else None
        # a 200 JSON object is usable for a detail request; as a page it has the wrong shape
        usable = last is not None and (
            last.kind == "ok" or (last.kind == "shape" and last.path.startswith("/detail/"))
        )
        if not usable:
            what = f"{last.kind} to {last.path}" if last else "no request"
            out.append(f"half-open breaker closed by a probe answered with {what}")
    return out


def sync_done(sync: Sync, api: ScriptedApi, stored_breaker: Any, probes_before: int) -> list[tuple[str, str]]:
    """Checks on a sync that has just ended (not crashed): ``(check name, message)`` pairs.

    ``probes_before``: half-open probes in flight when this run started (a crashed sync's stay until
    they expire; the run must not add any that outlive it).
    """
    out: list[tuple[str, str]] = []
    result = sync.result or {}
    mine = [w for w in api.log if w.sync == sync.id]
    if stored_breaker.probes_in_flight > probes_before:
        out.append(
            ("probe", f"sync {sync.id} ended leaving {stored_breaker.probes_in_flight} probe(s) in flight")
        )
    if not result:
        out.append(("explained", f"sync {sync.id} ended without a result"))
        return out
    if result.get("success"):
        truncating = sync.handler != "two_loops" and api.pages > sync.max_pages
        pages = sync.max_pages if sync.handler != "two_loops" else None
        expected = [i for c in COLLECTIONS[sync.handler] for i in api.all_items(c, pages)]
        if sync.handler == "default":
            if result.get("items_processed", 0) < len(expected):
                out.append(
                    (
                        "items",
                        f"sync {sync.id}: {result.get('items_processed')} items, expected {len(expected)}",
                    )
                )
        else:
            missing = sorted(set(expected) - set(sync.seen))
            if missing:
                out.append(
                    (
                        "items",
                        f"sync {sync.id} ({sync.handler}) succeeded; never reached the handler: {missing}",
                    )
                )
        if bool(result.get("truncated")) != truncating:
            out.append(
                (
                    "truncated",
                    f"sync {sync.id}: truncated={result.get('truncated')!r} with {api.pages} pages, "
                    f"max_pages={sync.max_pages}",
                )
            )
    else:
        kind = str(result.get("error"))
        if kind not in BLOCKED:
            seen = {w.kind for w in mine}
            message = str(result.get("error_message"))
            budget = "max_sync_duration" in message
            # two trailing-slash redirects in a row (/items -> /items/ -> /items) are a loop at the API
            toggled = "redirect loop" in message and sum(w.kind == "redirect" for w in mine) >= 2
            explained = seen & EXPLAINED_BY.get(kind, frozenset()) or (kind == "TIMEOUT" and budget)
            if not (explained or (kind == "INVALID_RESPONSE" and toggled)):
                reason = (
                    "reaching max_pages" if api.pages > sync.max_pages and kind == "INVALID_RESPONSE" else ""
                )
                out.append(
                    (
                        "truncated" if reason else "explained",
                        f"sync {sync.id} ({sync.handler}) failed {kind}: {result.get('error_message')} "
                        f"{'(' + reason + ') ' if reason else ''}but the API answered only {sorted(seen)}",
                    )
                )
    return out


def reread(sync: Sync, log: Sequence[Wire]) -> list[str]:
    """Within a sync, pages are read in order; only the unfinished page may be read again."""
    last: dict[str, int] = {}
    out = []
    for w in log:
        if w.sync != sync.id or w.page is None:
            continue
        collection, page = w.page
        if page < last.get(collection, 0):
            out.append(
                f"sync {sync.id} ({sync.handler}) read {collection} page {page} after page {last[collection]}"
            )
        last[collection] = max(page, last.get(collection, 0))
    return out
