"""A source's shared state (breaker, window log, last result) and where it is kept.

One Airflow Variable per source, key ``sync_state_<source>``, JSON::

    {"schema_version": 1, "source": "airdrops",
     "breaker": {"state": "closed", "failure_count": 0, "opened_at": null, ...},
     "window": [1764390000.0, ...], "last_result": {...} | null, "updated_at": 1764390000.0,
     "writer": "sync_airdrops/scheduled__2026-11-29T10:00:00+00:00",
     "bookmark": "2026-01-05T10:00:00Z" | 1764390000 | null}

``writer`` (optional, added without a schema bump: older providers ignore it) names who made the
last write, so a sync can tell a foreign write from its own (see ``merge``). ``window`` is kept in
time order, at most ``MAX_WINDOW_ENTRIES`` long (the newest): every limit is at most that large,
so the newest entries decide every admission exactly.
``bookmark`` is the highest ``incremental.cursor_field`` an incremental sync has loaded (optional).
A source with ``resources:`` keeps each resource's own under ``"resources": {"<name>": {"bookmark":
..., "last_result": {...}}}`` (optional, no schema bump; a state without it reads as no resource run yet).

Above ``rate_limit.LOG_MAX`` live requests the window is bucketed (``policy.buckets``), stored as
``"window": []`` plus ``"window_buckets": {"width": 36.0, "counts": [[49011000, 57], ...]}`` (bucket
index, request count; bucket ``i`` ends at ``i * width``). Also added without a schema bump: an
older provider ignores the key and sees an empty window.

The window is kept per writer (``policy.shares``): ``window`` / ``window_buckets`` hold every request
(what an older provider reads), ``"window_shares": {"3f9a0c1d": [4, [1764390000.5, ...]],
"b71e04aa": [9, 36.0, [[49011000, 57], ...]]}`` each guard's own: its random tag, then how many
changes it made to its share and its requests, as a log or as bucket width and counts. What the
shares do not account for is the share of no known writer (a state written before shares, or by an
older provider, which drops the key). Added without a schema bump. ``SourceState.window`` is always
the union of all shares.

The further windows of ``rate_limit.extra_windows`` (issue 19) are kept the same way under
``"extra_windows": {"86400": {"3f9a0c1d": [4, 864.01, [[2083334, 57], ...]]}}``: per window length in
seconds, the shares as in ``window_shares``. Added without a schema bump (an older provider drops it).

A source with ``rate_limit.adaptive`` keeps its effective limit under ``"adaptive": {"algorithm":
"cubic", "limit": 42.0, "w_max": 60.0, "decreased_at": 1764390000.0, "in_use": 59}`` once the API
first refused it (``adaptive_limit``, ``policy.adaptive``); no key before that, none for other sources.
Added without a schema bump (an older provider drops it).

Corrupt or foreign content is reported through ``on_warning`` and replaced by a fresh state; a
*newer* schema version raises ``SyncStateError`` instead, so an older provider never overwrites it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_sync_provider.config import MAX_WINDOW_ENTRIES
from airflow_sync_provider.exceptions import SyncStateError
from airflow_sync_provider.policy import adaptive as adaptive_policy
from airflow_sync_provider.policy import breaker as breaker_policy
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.breaker import BreakerSettings, BreakerSnapshot, BreakerState
from airflow_sync_provider.policy.log import Log
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.state import fields
from airflow_sync_provider.state.fields import Warn as Warn

SCHEMA_VERSION = 1
VARIABLE_PREFIX = "sync_state_"
log = logging.getLogger(__name__)


def variable_key(source: str) -> str:
    return f"{VARIABLE_PREFIX}{source}"


@dataclass(frozen=True)
class SourceState:
    """What every worker and DAG syncing ``source`` shares."""

    source: str
    breaker: BreakerSnapshot = field(default_factory=BreakerSnapshot)
    window: rate_limit.Window = field(default_factory=Log)
    """A log of request times, or ``Buckets`` for large limits (``rate_limit.fit`` chooses): the union
    of ``shares`` (given ``shares``, this is computed from them)."""
    last_result: dict[str, Any] | None = None
    updated_at: float | None = None
    writer: str | None = None
    """Who wrote this state last (a sync's ``dag_id/run_id``, ``sync_admin/...``); ``None`` if unknown."""
    quota: Quota | None = None
    """What the API last reported about its own quota (``policy.quota``), shared like the window."""
    bookmark: str | int | float | None = None
    """The highest cursor value loaded by an incremental sync; moves only after its load committed."""
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per resource of the source: its ``bookmark`` and ``last_result`` (``resource_state``)."""
    schema_version: int = SCHEMA_VERSION
    shares: sh.Shares = ()
    """The window per writer (``policy.shares``); a window given alone is one anonymous share."""
    extra_windows: tuple[tuple[float, sh.Shares], ...] = ()
    """The further windows of ``rate_limit.extra_windows`` (issue 19): per window length in seconds,
    its requests per writer, ordered by length. Empty shares are left out when stored."""

    learned_windows: tuple[tuple[float, int, float], ...] = ()
    """Windows the API advertised (``RateLimit-Policy``) longer than ours: (seconds, limit, trusted
    until); their requests are kept in ``extra_windows`` from when they were learned."""

    adaptive: dict[str, Any] | None = None
    """The effective limit of ``rate_limit.adaptive`` (``policy.adaptive`` state); ``None``: never
    lowered, or not adaptive."""

    def extra(self, seconds: float) -> sh.Shares:
        """The shares of the further window of ``seconds`` (none yet: empty)."""
        return next((shares for length, shares in self.extra_windows if length == seconds), ())

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", rate_limit.as_window(self.window))
        if self.shares:
            object.__setattr__(self, "window", sh.total(self.shares))
        elif len(self.window):
            object.__setattr__(self, "shares", (sh.Share(sh.ANONYMOUS, 0, self.window),))

    def replace(self, **changes: Any) -> SourceState:
        """A copy with ``changes``; a new ``window`` without ``shares`` becomes one anonymous share."""
        if "window" not in changes and "shares" not in changes:  # the window stays: no re-union
            fields = {f.name for f in dataclasses.fields(self)}
            unknown = set(changes) - fields
            if unknown:
                raise TypeError(f"SourceState has no field(s) {sorted(unknown)}")
            new = copy.copy(self)
            for name, value in changes.items():
                object.__setattr__(new, name, value)
            return new
        if "window" in changes and "shares" not in changes:
            changes["shares"] = ()
        elif "shares" in changes and "window" not in changes:
            changes["window"] = ()  # computed from the shares
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        breaker = dataclasses.asdict(self.breaker)
        breaker["state"] = self.breaker.state.value
        named = {s.writer: s.window.share_json(s.seq) for s in self.shares if s.writer and len(s.window)}
        body: dict[str, Any] = {
            "schema_version": self.schema_version,
            "source": self.source,
            "breaker": breaker,
            **self.window.serialise(keep=MAX_WINDOW_ENTRIES),
            "last_result": self.last_result,
            "updated_at": self.updated_at,
        }
        if named:
            body["window_shares"] = named
        extra = {
            format(length, "g"): {s.writer: s.window.share_json(s.seq) for s in shares if len(s.window)}
            for length, shares in self.extra_windows
        }
        extra = {length: shares for length, shares in extra.items() if shares}
        if extra:
            body["extra_windows"] = extra
        if self.learned_windows:
            body["learned_windows"] = [list(w) for w in self.learned_windows]
        if self.adaptive is not None:
            body["adaptive"] = self.adaptive
        if self.writer is not None:
            body["writer"] = self.writer
        if self.quota is not None:
            body["quota"] = self.quota.to_dict()
        if self.bookmark is not None:
            body["bookmark"] = self.bookmark
        if self.resources:
            body["resources"] = self.resources
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None, source: str, *, on_warning: Warn | None = None) -> SourceState:
        """Parse stored state; anything unusable is reported and replaced by a fresh state."""
        warn = on_warning or log.warning
        if raw is None or raw == "":
            return cls(source)
        try:
            data = json.loads(raw)
        except (TypeError, ValueError) as exc:
            warn(f"{variable_key(source)} is not valid JSON ({exc}); starting from a fresh state")
            return cls(source)
        if not isinstance(data, dict) or "schema_version" not in data:
            warn(f"{variable_key(source)} does not hold sync state (foreign content); starting fresh")
            return cls(source)
        version = data.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise SyncStateError(
                f"{variable_key(source)} has schema_version {version}, newer than this provider "
                f"understands ({SCHEMA_VERSION}); upgrade airflow-sync-provider or delete the Variable"
            )
        if version != SCHEMA_VERSION or isinstance(version, bool):  # true == 1 in Python, not in JSON
            warn(f"{variable_key(source)} has unknown schema_version {version!r}; starting fresh")
            return cls(source)
        try:
            return _parse_v1(data, source, warn)
        except (TypeError, ValueError, KeyError) as exc:
            warn(f"{variable_key(source)} has a malformed field ({exc}); starting from a fresh state")
            return cls(source)


def _parse_v1(data: dict[str, Any], source: str, warn_any: Warn) -> SourceState:
    def warn(message: str) -> None:
        warn_any(f"{variable_key(source)}: {message}")

    if data.get("source") != source:
        raise ValueError(f"source is {data.get('source')!r}, expected {source!r}")
    b = data.get("breaker") or {}
    if not isinstance(b, dict):
        raise ValueError(f"breaker must be an object, got {b!r}")
    last_error = b.get("last_error")
    breaker = BreakerSnapshot(
        state=BreakerState(b.get("state", "closed")),
        failure_count=fields.count(b.get("failure_count", 0), "breaker.failure_count", warn),
        opened_at=fields.number(b.get("opened_at"), "breaker.opened_at"),
        half_open_since=fields.number(b.get("half_open_since"), "breaker.half_open_since"),
        probes_in_flight=fields.count(b.get("probes_in_flight", 0), "breaker.probes_in_flight", warn),
        last_error=str(last_error)[:500] if last_error is not None else None,
        last_failure_at=fields.number(b.get("last_failure_at"), "breaker.last_failure_at"),
        failed_probes=fields.count(b.get("failed_probes", 0), "breaker.failed_probes", warn),
    )
    if breaker.state is BreakerState.OPEN and breaker.opened_at is None:
        raise ValueError("breaker.opened_at is missing for an open breaker")
    window = data.get("window") or []
    if not isinstance(window, list):
        raise ValueError(f"window must be a list, got {window!r}")
    # by time, not by list position: a hand-edited or foreign log need not be in order
    stamps: rate_limit.Window = Log(fields.log(window, "window"))
    if data.get("window_buckets") is not None:
        stamps = rate_limit.union(fields.buckets(data["window_buckets"], "window_buckets"), stamps)
    named = fields.shares(data.get("window_shares"))
    shares = (sh.Share(sh.ANONYMOUS, 0, sh.rest(stamps, named)), *named)
    last = data.get("last_result")
    writer = data.get("writer")
    extra = fields.extra_windows(data.get("extra_windows"))
    quota = fields.quota(data.get("quota"), warn)
    return SourceState(
        source=source,
        breaker=breaker,
        shares=sh.of(s for s in shares if len(s.window)),
        last_result=last if isinstance(last, dict) else None,
        updated_at=fields.number(data.get("updated_at"), "updated_at"),
        writer=str(writer)[:250] if writer is not None else None,
        quota=quota,
        bookmark=fields.bookmark(data.get("bookmark")),
        extra_windows=extra,
        learned_windows=fields.learned_windows(data.get("learned_windows"), warn),
        resources=fields.resources(data.get("resources"), warn),
        adaptive=fields.adaptive(data.get("adaptive"), warn),
    )


def merge(ours: SourceState, theirs: SourceState, *, settings: BreakerSettings | None = None) -> SourceState:
    """``ours`` about to be saved over a foreign write ``theirs``: keep what both know.

    The window is the union of both per writer (``shares.merge``: no request of one writer can
    cancel out another's); the breaker is the more severe of the two (``breaker.merge``, two open
    ones: the later probe, given ``settings``). The newer learned ``quota`` wins; our
    ``last_result`` and writer stay. The adaptive state of the later decrease wins (``policy.adaptive``
    ``merge``: two workers' refusals do not undo each other).
    """
    quota = ours.quota
    if theirs.quota is not None and (
        quota is None or (theirs.quota.observed_at or 0) > (quota.observed_at or 0)
    ):
        quota = theirs.quota
    return ours.replace(
        shares=sh.merge(ours.shares, theirs.shares),
        breaker=breaker_policy.merge(ours.breaker, theirs.breaker, settings),
        quota=quota,
        bookmark=ours.bookmark if ours.bookmark is not None else theirs.bookmark,
        learned_windows=tuple(
            sorted(
                {
                    n: (n, limit, until)
                    for n, limit, until in sorted(
                        (*ours.learned_windows, *theirs.learned_windows), key=lambda w: w[2]
                    )
                }.values()
            )
        ),
        extra_windows=tuple(
            (length, sh.merge(ours.extra(length), theirs.extra(length)))
            for length in sorted({n for n, _ in (*ours.extra_windows, *theirs.extra_windows)})
        ),
        resources={**theirs.resources, **ours.resources},
        adaptive=adaptive_policy.merge(ours.adaptive, theirs.adaptive),
    )


class StateStore(Protocol):
    """Where source states live. ``load`` never fails on bad content (see ``SourceState.from_json``)."""

    def load(self, source: str, *, on_warning: Warn | None = None) -> SourceState: ...

    def save(self, state: SourceState) -> None: ...


class InMemoryStateStore:
    """A dict of JSON strings: the store for tests and simulations (same serialisation as Variables)."""

    def __init__(self, raw: dict[str, str] | None = None) -> None:
        self.raw: dict[str, str] = dict(raw or {})
        self.reads = 0
        self.writes = 0

    def load(self, source: str, *, on_warning: Warn | None = None) -> SourceState:
        self.reads += 1
        return SourceState.from_json(self.raw.get(variable_key(source)), source, on_warning=on_warning)

    def save(self, state: SourceState) -> None:
        self.writes += 1
        self.raw[variable_key(state.source)] = state.to_json()

    def sources(self) -> list[str]:
        return sorted(k.removeprefix(VARIABLE_PREFIX) for k in self.raw if k.startswith(VARIABLE_PREFIX))


class VariableStateStore:
    """Source states in Airflow Variables (``sync_state_<source>``), shared by every worker and DAG.

    Inside a task it uses the Task SDK's ``Variable`` (Execution API); elsewhere (CLI, plugin) pass
    ``variable_api=airflow.models.Variable``. Airflow Variables are last-write-wins: callers
    serialise writers of one source with the pool ``sync_<source>`` (1 slot).
    """

    def __init__(self, variable_api: Any = None) -> None:
        if variable_api is None:
            from airflow.sdk import Variable

            variable_api = Variable
        self._variables = variable_api
        self.reads = 0
        self.writes = 0

    def load(self, source: str, *, on_warning: Warn | None = None) -> SourceState:
        self.reads += 1
        raw = self._variables.get(variable_key(source), None)  # SDK: default=, models: default_var=
        return SourceState.from_json(raw, source, on_warning=on_warning)

    def save(self, state: SourceState) -> None:
        self.writes += 1
        self._variables.set(
            variable_key(state.source),
            state.to_json(),
            description=f"airflow-sync-provider: breaker and rate-limit window of {state.source!r}",
        )


def known_sources(*groups: Iterable[str]) -> list[str]:
    """Sorted union of source names."""
    return sorted({s for group in groups for s in group})
