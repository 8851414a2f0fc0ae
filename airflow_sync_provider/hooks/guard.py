"""One sync's hold on a source's shared state: breaker permission, window slots, recorded outcomes.

The state is read when the guard is made and written only when a change must survive a crash: a
window slot taken (before the request is sent), a failure counted, a breaker transition, the final
result. A slot is stamped when it is taken and re-stamped when the response has arrived; it frees
``window + safety_margin`` after that, so the API never sees two requests ``max_requests`` apart
closer than ``window``.

A slot whose response took longer than the safety margin is re-stamped in the store at once (a crash
before the next write would otherwise leave the earlier pre-send stamp); a faster one rides on the
next write.

One writer per source is the rule (the pool ``sync_<source>``, enforced by the operator). Every
write carries the writer's id, and every write after the first re-reads the state: a write by
someone else since our last read or write is logged as a warning and merged (the union of both
windows per writer, ``policy.shares``; the more severe breaker) instead of being overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.policy import advertised, breaker, quota, rate_limit, skew
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.breaker import BreakerSettings, BreakerState, Transition
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state import learned_windows
from airflow_sync_provider.state.adaptive_limit import AdaptiveLimit
from airflow_sync_provider.state.store import SourceState, StateStore, merge, variable_key

SKEW_TOLERANCE = 1.0
"""Stored times up to this many seconds ahead of the clock are ordinary skew between workers."""


def breaker_settings(config: SyncConfig) -> BreakerSettings:
    cb = config.circuit_breaker
    return BreakerSettings(
        failure_threshold=cb.failure_threshold,
        reset_timeout=cb.reset_timeout / timedelta(seconds=1),
        half_open_max_attempts=cb.half_open_max_attempts,
        reset_multiplier=cb.reset_multiplier,
        max_reset_timeout=cb.reset_timeout_cap / timedelta(seconds=1),
    )


def hold_seconds(config: SyncConfig) -> float:
    """How long a slot stays taken after its response: the window plus the safety margin."""
    limit = config.rate_limit
    return (limit.window + limit.margin) / timedelta(seconds=1)


def clamp_future_times(state: SourceState, now: float, warn: Callable[[str], None]) -> SourceState:
    """Stored times in the future (clock skew, hand-edited state) are clamped to ``now``, with a warning.

    Without this an ``opened_at`` a year ahead keeps the breaker open for a year. The clamped
    state is written by the sync's next save.
    """
    b = state.breaker
    fixes: list[str] = []
    changes: dict[str, Any] = {}
    for name in ("opened_at", "half_open_since", "last_failure_at"):
        value = getattr(b, name)
        if value is not None and value > now:
            changes[name] = now
            if value > now + SKEW_TOLERANCE:
                fixes.append(f"breaker.{name} {value - now:.0f}s in the future")
    _, ahead, furthest = rate_limit.clamp_future(state.window, now)
    if ahead and furthest > SKEW_TOLERANCE:
        fixes.append(f"{ahead} window entries up to {furthest:.0f}s in the future")
    updated_at = state.updated_at
    if updated_at is not None and updated_at > now:
        updated_at = now
    if not changes and not ahead and updated_at == state.updated_at:
        return state
    if fixes:
        warn(f"{variable_key(state.source)}: {'; '.join(fixes)}; set to now")
    breaker_now = dataclasses.replace(b, **changes) if changes else b
    shares = sh.each(state.shares, lambda w: rate_limit.clamp_future(w, now)[0]) if ahead else state.shares
    return state.replace(breaker=breaker_now, shares=shares, updated_at=updated_at)


@dataclass(frozen=True)
class Admission:
    """May the next request be sent? When not: why (``kind``) and how long until it may (``wait``)."""

    allowed: bool
    kind: SyncErrorKind | None = None
    wait: float = 0.0
    message: str = ""


class SourceGuard:
    """Breaker and sliding window of one source for the duration of one sync."""

    def __init__(
        self,
        config: SyncConfig,
        store: StateStore,
        *,
        clock: Callable[[], float],
        log: logging.Logger | Any,
        on_transition: Callable[[Transition, SourceState], None] | None = None,
        writer: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.log = log
        self.on_transition = on_transition
        self.settings = breaker_settings(config)
        self.writer = writer or f"local/{uuid.uuid4().hex[:12]}"
        """Written into every save (``SourceState.writer``): a sync's ``dag_id/run_id``."""
        self.tag = uuid.uuid4().hex[:8]
        """This guard's share of the window (``policy.shares``): random, never another guard's (a
        resumed or retried run of the same ``dag_id/run_id`` is another guard)."""
        self.window_seconds = config.rate_limit.window / timedelta(seconds=1)
        self.margin_seconds = config.rate_limit.margin / timedelta(seconds=1)
        self.hold_seconds = hold_seconds(config)
        self._warned_windows: set[tuple[int, float]] = set()  # advertised windows warned about
        self.learned_cap = config.rate_limit.learned_wait_cap / timedelta(seconds=1)
        """How long a learned quota is trusted at most after it was learned (``max_learned_wait``)."""
        self.learned_long_wait: quota.Quota | None = None
        """A ``remaining 0`` this sync learned whose reset is beyond ``max_wait`` (alerted once)."""
        self._warned: set[str] = set()
        loaded = store.load(config.source, on_warning=self._warn_once)
        self._seen = (loaded.writer, loaded.updated_at)  # the last write we read or made
        self.state: SourceState = clamp_future_times(loaded, clock(), log.warning)
        self.transitions: list[Transition] = []
        self._saved = self.state
        self._pending: float | None = None  # the slot of the request in flight (its pre-send stamp)
        self._warned_limit: int | None = None  # an advertised limit below ours is logged once
        self._warned_skew = False  # a clock off the API's Date is logged once
        self.adaptive = AdaptiveLimit(config, log=log)
        """The effective limit of ``rate_limit.adaptive`` (the configured limit otherwise)."""

    def admit(self) -> Admission:
        """Breaker permission, then a window slot; persists the slot before the request is sent."""
        now = self.clock()
        # re-read even right after the load: a write by another sync between the load and this slot's
        # save would otherwise be overwritten, not merged (found by tests/model)
        self._refresh(now)
        admission, permit, decision = self._decide(now)
        self._note(permit.transition, permit.snapshot)
        if decision is None:  # the breaker refused: nothing else changes
            return admission
        shares = self._fitted(now)
        if not admission.allowed:  # the window refused: a half-open probe taken above goes back
            snapshot = breaker.record_neutral(permit.snapshot)
            self.state = self.state.replace(breaker=snapshot, shares=shares)
            return admission
        shares = sh.take(shares, self.tag, now, like=sh.total(shares) or decision.timestamps)
        taken = {length: self._take(length, fitted, now) for length, fitted in self._extra_fitted(now)}
        kept = {length: shares for length, shares in self.state.extra_windows if length not in taken}
        extra = tuple(sorted({**kept, **taken}.items()))
        self.state = self.state.replace(
            breaker=permit.snapshot, shares=shares, quota=self._spend_one(now), extra_windows=extra
        )
        self._pending = now
        self.adaptive.sent(self.state, now, in_window=len(decision.timestamps) - 1)
        self._save(now)
        return admission

    def peek(self) -> Admission:
        """What ``admit`` would answer now, without taking a slot or writing anything (dry runs)."""
        return self._decide(self.clock())[0]

    def _decide(self, now: float) -> tuple[Admission, breaker.Permit, rate_limit.WindowDecision | None]:
        """The answer to "may I send now?" and the policy decisions behind it (nothing applied)."""
        permit = breaker.before_request(self.state.breaker, self.settings, now)
        snapshot = permit.snapshot
        if not permit.allowed:
            wait = max((permit.retry_at or now) - now, 0.0)
            message = (
                f"circuit breaker is {snapshot.state.value} ({snapshot.failure_count} failures, last "
                f"error: {snapshot.last_error}); next probe in {wait:.0f}s"
            )
            return Admission(False, SyncErrorKind.CIRCUIT_BREAKER_OPEN, wait, message), permit, None
        learned = self.learned_quota(now)
        decision, message = self._window(learned, now)
        if decision.granted:
            decision, message = self._extra_room(now, decision, message)
        spent = quota.wait(learned, now, self.learned_cap)
        if spent > 0 and spent >= decision.wait:  # nothing is left at the API until its reset
            message = f"{quota.SPENT} (remaining 0); it resets in {spent:.1f}s{self._capped(learned, now)}"
            refused = rate_limit.WindowDecision(False, self.state.window, spent)
            return Admission(False, SyncErrorKind.RATE_LIMIT_EXCEEDED, spent, message), permit, refused
        if not decision.granted:
            admission = Admission(False, SyncErrorKind.RATE_LIMIT_EXCEEDED, decision.wait, message)
            return admission, permit, decision
        message = f"breaker {snapshot.state.value}, window has room"
        return Admission(True, message=message), permit, decision

    def _window(self, learned: quota.Quota | None, now: float) -> tuple[rate_limit.WindowDecision, str]:
        """Our window at the obeyed limit, and why it refuses. A lower limit the API advertised binds only
        while its report holds (a limit without a window counts per ours, but not past its reset)."""
        ours = self.adaptive.limit(self.state, now)  # the configured limit, or the effective one
        obeyed = min(self._obeyed_limit(learned, now), ours)
        own = rate_limit.acquire(self.state.window, now, max_requests=ours, window=self.hold_seconds)
        if not own.granted or obeyed == ours:
            limit, decision = ours, own
            whose = "" if ours == self.config.rate_limit.max_requests else ", the effective limit (adaptive)"
        else:
            lowered = rate_limit.acquire(
                self.state.window, now, max_requests=obeyed, window=self.hold_seconds
            )
            end = quota.expires_at(learned, self.learned_cap) if learned is not None else None
            wait = lowered.wait if end is None else min(lowered.wait, max(end - now, 0.0))
            limit, decision = obeyed, dataclasses.replace(lowered, wait=wait)
            whose = ", the API's advertised limit"
        message = (
            f"rate limit window full ({limit} requests per {self.window_seconds:.0f}s{whose}); "
            f"next slot in {decision.wait:.1f}s"
        )
        return decision, message

    def further_windows(self, now: float) -> tuple[tuple[float, int, float, str], ...]:
        """Every window besides the first: ``rate_limit.extra_windows`` and the windows the API advertised
        (``RateLimit-Policy``, while learned), as (seconds, limit, hold seconds, what it is); one
        length twice: the lower limit."""
        margin = self.margin_seconds
        found: dict[float, tuple[int, str]] = {}
        for w in self.config.rate_limit.extra_windows:
            found[w.seconds] = (w.max_requests, "rate_limit.extra_windows")
        for length, limit, _ in learned_windows.binding(self.state, self.config, now):
            found[length] = (limit, "advertised by the API")
        return tuple((n, limit, n + margin, text) for n, (limit, text) in sorted(found.items()))

    def _extra_fitted(self, now: float) -> tuple[tuple[float, sh.Shares], ...]:
        """Every further window's shares pruned and in its form (buckets above ``LOG_MAX``)."""
        return tuple(
            (n, sh.fit(self.state.extra(n), now, max_requests=limit, window=hold))
            for n, limit, hold, _ in self.further_windows(now)
        )

    def _extra_room(
        self, now: float, granted: rate_limit.WindowDecision, message: str
    ) -> tuple[rate_limit.WindowDecision, str]:
        """``granted`` unless a further window is full: then the longest wait among the full ones."""
        worst: tuple[float, str] | None = None
        for n, limit, hold, text in self.further_windows(now):
            wait = sh.total(self.state.extra(n)).room(now, max_requests=limit, window=hold)
            if wait > 0 and (worst is None or wait > worst[0]):
                worst = (
                    wait,
                    f"rate limit window full ({limit} requests per {n:.0f}s, {text}); "
                    f"next slot in {wait:.1f}s",
                )
        if worst is None:
            return granted, message
        return rate_limit.WindowDecision(False, self.state.window, worst[0]), worst[1]

    def _learn_windows(self, headers: dict[str, str], now: float) -> None:
        """Each window the API advertises (``policy.advertised``) longer than ours binds as a learned
        window for the larger of its length and ``max_learned_wait``; one tighter than the config
        allows over it is warned once per sync, naming both."""
        bare = self.config.rate_limit.advertised_window
        said = advertised.windows(headers, bare_window=bare.total_seconds() if bare else None)
        longer = [w for w in said if w.seconds > self.window_seconds]
        if not longer:
            return
        learned = {length: (limit, until) for length, limit, until in self.state.learned_windows}
        for limit, n, header in longer:
            learned[n] = (limit, now + max(n, self.learned_cap))
            allowed, ours = self._config_allows(n)
            if limit < allowed and (limit, n) not in self._warned_windows:
                self._warned_windows.add((limit, n))
                self.log.warning(
                    "%s: the API advertises %d requests per %.0fs (%s), tighter than the "
                    "config (%s allows %d in %.0fs): obeying it as a learned window",
                    self.config.source,
                    limit,
                    n,
                    header,
                    ours,
                    allowed,
                    n,
                )
        # a window learned just now starts from the requests of ours (the one that brought it included)
        records = dict(self.state.extra_windows)
        for _, n, _ in longer:
            records.setdefault(n, self.state.shares)
        self.state = self.state.replace(
            learned_windows=tuple((n, limit, until) for n, (limit, until) in sorted(learned.items())),
            extra_windows=tuple(sorted(records.items())),
        )

    def _config_allows(self, seconds: float) -> tuple[int, str]:
        """The most requests the configured windows allow in ``seconds``, and the window that says so."""
        limit = self.config.rate_limit
        windows = [(limit.max_requests, self.window_seconds)] + [
            (w.max_requests, w.seconds) for w in limit.extra_windows
        ]
        allows = [(most * math.ceil(seconds / n) if n < seconds else most, most, n) for most, n in windows]
        allowed, most, n = min(allows)
        return allowed, f"rate_limit {most} per {n:.0f}s"

    def record(self, attempt: Attempt) -> None:
        """Hold the attempt's slot from now (its response time); apply its breaker effect; persist
        when the count or the state changed, or when the response took longer than the safety
        margin (else the re-stamped slot rides on the next write)."""
        now = self.clock()
        slow = False
        if self._pending is not None:
            self._check_clock(attempt, self._pending, now)
            shares = sh.restamp(self.state.shares, self.tag, self._pending, now)
            slow = now - self._pending > self.margin_seconds and shares != self.state.shares
            extra = tuple(
                (length, sh.restamp(theirs, self.tag, self._pending, now))
                for length, theirs in self.state.extra_windows
            )
            self.state = self.state.replace(shares=shares, extra_windows=extra)
            self._pending = None
        if attempt.quota is not None and self.config.rate_limit.learn_from_headers:
            self._learn(attempt.quota, now)
        if attempt.headers and self.config.rate_limit.learn_from_headers:
            self._learn_windows(attempt.headers, now)
        if self.adaptive.is_refusal(attempt):  # another worker's decrease first: one per round trip
            self._refresh(now)
        self.state, lowered = self.adaptive.after(self.state, attempt, now)
        before = self.state.breaker
        if attempt.effect is BreakerEffect.SUCCESS:
            after, moved = breaker.record_success(before, now)
        elif attempt.effect is BreakerEffect.FAILURE:
            after, moved = breaker.record_failure(before, self.settings, now, attempt.message[:300])
        else:
            after, moved = breaker.record_neutral(before), None
        if after != before:
            self.state = self.state.replace(breaker=after)
            self._note(moved, after)
        # A reset success count in a closed breaker can wait for the final write; the rest cannot.
        if slow or lowered or moved is not None or attempt.effect is BreakerEffect.FAILURE:
            self._refresh(now)
            self._save(now)

    def _check_clock(self, attempt: Attempt, sent: float, received: float) -> None:
        """Warn once per sync when the response's ``Date`` shows our clock off the API's by more than the
        safety margin (``policy.skew``): the window then does not hold at the API across workers."""
        date = skew.date_of((attempt.headers or {}).get("date"))
        if date is None or self._warned_skew:
            return
        off = skew.offset(date, sent, received)
        if abs(off) <= self.margin_seconds:
            return
        self._warned_skew = True
        self.log.warning(
            "%s: this worker's clock is at least %.1fs %s the API's (its Date header), more than "
            "rate_limit.safety_margin (%gs): requests of different workers can reach the API closer "
            "than the window; synchronise the worker's clock (NTP)",
            self.config.source,
            abs(off),
            "behind" if off > 0 else "ahead of",
            self.margin_seconds,
        )

    def finish(self, result: dict[str, Any]) -> None:
        """Store the sync's result with the state (the one write every sync ends with)."""
        now = self.clock()
        self._refresh(now)
        self.state = self.state.replace(last_result=result)
        self._save(now)

    def learned_quota(self, now: float) -> quota.Quota | None:
        """What the API said about its quota, while it still holds and at most ``learned_cap`` after it
        was learned (``None`` when this config does not learn: it neither reads nor obeys it)."""
        if not self.config.rate_limit.learn_from_headers:
            return None
        return quota.current(self.state.quota, now, self.learned_cap)

    def _spend_one(self, now: float) -> quota.Quota | None:
        """The stored quota after one more request: ``remaining`` counts down while the report holds.
        A config that does not learn keeps what others learned (and counts its request against it)."""
        if self.config.rate_limit.learn_from_headers:
            return quota.consume(self.learned_quota(now), now)
        return quota.consume(self.state.quota, now) or self.state.quota

    def _learn(self, reported: quota.Quota, now: float) -> None:
        """Keep what a response said. ``remaining 0`` without a usable reset holds until our window frees
        its oldest slot; a reset beyond ``max_wait`` is remembered for the sync's alert."""
        live = rate_limit.prune(self.state.window, now, self.hold_seconds)
        oldest = rate_limit.oldest(live)
        free_at = (oldest if oldest is not None else now) + self.hold_seconds
        reported = quota.with_reset(reported, free_at)
        learned = quota.merge(self.state.quota, reported, now, self.learned_cap)
        self.state = self.state.replace(quota=learned)
        max_wait = self.config.max_wait / timedelta(seconds=1)
        if reported.remaining == 0 and (reported.reset_at or now) - now > max_wait:
            self.learned_long_wait = reported

    def _capped(self, learned: quota.Quota | None, now: float) -> str:
        """How a learned reset beyond the cap reads in a refusal (empty when the cap did not cut it)."""
        if learned is None or learned.reset_at is None or learned.observed_at is None:
            return ""
        said = learned.reset_at - now
        if learned.reset_at <= learned.observed_at + self.learned_cap:
            return ""
        return (
            f" (the API said {said:.0f}s; a learned reset is trusted at most "
            f"rate_limit.max_learned_wait={self.learned_cap:g}s, then one request goes out)"
        )

    def _obeyed_limit(self, learned: quota.Quota | None, now: float) -> int:
        """Our limit, lowered to an advertised one (logged once per sync); never raised."""
        ours = self.config.rate_limit.max_requests
        obeyed = quota.effective_limit(ours, self.window_seconds, learned, now, self.learned_cap)
        if obeyed < ours and self._warned_limit != obeyed:
            self._warned_limit = obeyed
            self.log.warning(
                "%s: the API advertises a lower limit than the config: obeying %d requests per %.0fs "
                "instead of rate_limit.max_requests=%d",
                self.config.source,
                obeyed,
                self.window_seconds,
                ours,
            )
        return obeyed

    @property
    def breaker_open(self) -> bool:
        return self.state.breaker.state is BreakerState.OPEN

    def window_usage(self) -> float:
        """The fullest window's usage (``rate_limit``, its ``extra_windows`` and the learned ones)."""
        requests, limit, _ = learned_windows.tightest(self.state, self.config, self.clock())
        return requests / limit

    def _take(self, length: float, fitted: sh.Shares, now: float) -> sh.Shares:
        """Our slot at ``now`` in the further window of ``length`` seconds (in the form ``fit`` chose)."""
        limit, hold = next((limit, hold) for n, limit, hold, _ in self.further_windows(now) if n == length)
        form = rate_limit.fit(sh.total(fitted), now, max_requests=limit, window=hold)
        return sh.take(fitted, self.tag, now, like=form)

    def _note(self, moved: Transition | None, snapshot: breaker.BreakerSnapshot) -> None:
        if moved is None:
            return
        self.transitions.append(moved)
        self.state = self.state.replace(breaker=snapshot)
        self.log.warning(
            "Circuit breaker of %s: %s -> %s (%s)",
            self.config.source,
            moved.source_state.value,
            moved.target_state.value,
            moved.reason,
        )
        if self.on_transition is not None:
            self.on_transition(moved, self.state)

    def flush(self) -> None:
        """Persist changes not yet written (before a deferral)."""
        if self.state != self._saved:
            now = self.clock()
            self._refresh(now)
            self._save(now)

    def _warn_once(self, message: str) -> None:
        """A problem with the stored state, logged once per sync (every write re-reads the state)."""
        if message not in self._warned:
            self._warned.add(message)
            self.log.warning(message)

    def _refresh(self, now: float) -> None:
        """Re-read the state; a write by anyone else since our last read or write is merged in."""
        current = self.store.load(self.config.source, on_warning=self._warn_once)
        if (current.writer, current.updated_at) == self._seen:
            return
        self.log.warning(
            "%s was written by %s since this sync (%s) last read or wrote it: one writer per source is "
            "the rule (pool sync_%s); merging its window entries and breaker state into ours",
            variable_key(self.config.source),
            current.writer or "an unknown writer",
            self.writer,
            self.config.source,
        )
        theirs = clamp_future_times(current, now, self.log.warning)
        self.state = merge(self.state, theirs, settings=self.settings)
        self.state = self.state.replace(shares=self._fitted(now))
        self._seen = (current.writer, current.updated_at)

    def _fitted(self, now: float) -> sh.Shares:
        """Every share pruned and in the form for our limit."""
        limit = self.config.rate_limit.max_requests
        return sh.fit(self.state.shares, now, max_requests=limit, window=self.hold_seconds)

    def _save(self, now: float) -> None:
        self.state = self.state.replace(updated_at=now, writer=self.writer)
        self.store.save(self.state)
        self._saved = self.state
        self._seen = (self.writer, now)
