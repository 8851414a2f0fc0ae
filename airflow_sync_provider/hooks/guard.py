"""One sync's hold on a source's shared state: breaker permission, window slots, recorded outcomes.

The state is read at the first admission (or the first look at ``state``) and written only when a
change must survive a crash: slots taken (before the request is sent), a failure counted, a breaker
transition, the final result. A slot is stamped when it is taken and re-stamped when the response
has arrived; it frees ``window + safety_margin`` after that, so the API never sees two requests
``max_requests`` apart closer than ``window``. A response later than the margin after its slot's
stamp is re-stamped in the store at once; a faster one rides on the next write.

Slots are taken in leases (``hooks.lease``): one write reserves up to ``k``, the requests sent under
it cost no state call, and the sync writes again when it is spent, at a deferral or at the end,
giving back what it did not use. Every write carries the writer's id and re-reads the state first
(``hooks.stored``): a foreign write is logged and merged instead of being overwritten (one writer
per source is the rule: the pool ``sync_<source>``).

Who holds what: ``stored`` is the state as last read or written; ``state`` the working copy (what
differs from ``stored.last`` must still be written); ``lease`` and ``in_flight`` what this sync
reserved and has on the wire.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.clock_check import ClockCheck
from airflow_sync_provider.hooks.further_windows import FurtherWindow, FurtherWindows
from airflow_sync_provider.hooks.learned_quota import LearnedQuota
from airflow_sync_provider.hooks.lease import Lease, PageRate, lease_size
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.hooks.stored import StoredCopy
from airflow_sync_provider.policy import breaker, quota, rate_limit
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.breaker import BreakerSettings, BreakerState, Transition
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state import learned_windows
from airflow_sync_provider.state.adaptive_limit import AdaptiveLimit
from airflow_sync_provider.state.store import SourceState, StateStore


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


@dataclass(frozen=True)
class Admission:
    """May the next request be sent? When not: why (``kind``) and how long until it may (``wait``)."""

    allowed: bool
    kind: SyncErrorKind | None = None
    wait: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class InFlight:
    """The request on the wire: the stamp its slot is stored with, and when it was admitted."""

    stamp: float
    sent: float


ROOM = "window has room"


class SourceGuard:
    """Breaker and sliding windows of one source for the duration of one sync."""

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
        self.clock = clock
        self.log = log
        self.on_transition = on_transition
        self.settings = breaker_settings(config)
        self.writer = writer or f"local/{uuid.uuid4().hex[:12]}"
        """Written into every save (``SourceState.writer``): a sync's ``dag_id/run_id``."""
        self.tag = uuid.uuid4().hex[:8]
        """This guard's share of the window (``policy.shares``): random, never another guard's (a
        resumed or retried run of the same ``dag_id/run_id`` is another guard)."""
        self.window_length = config.rate_limit.window / timedelta(seconds=1)
        self.margin_seconds = config.rate_limit.margin / timedelta(seconds=1)
        self.hold_seconds = hold_seconds(config)
        self.quota = LearnedQuota(config, self.hold_seconds, log)
        self.learned_cap = self.quota.cap
        self.clock_check = ClockCheck(config.source, self.margin_seconds, log)
        self.stored = StoredCopy(store, config.source, writer=self.writer, settings=self.settings, log=log)
        self.further = FurtherWindows(config, log)
        self._state: SourceState | None = None  # the working copy, read on first use
        self.transitions: list[Transition] = []
        self.lease: Lease | None = None
        self.in_flight: InFlight | None = None
        self.rate = PageRate()
        self.adaptive = AdaptiveLimit(config, log=log)
        """The effective limit of ``rate_limit.adaptive`` (the configured limit otherwise)."""
        self.on_first_read: Callable[[SourceState], None] | None = None
        """Called with the state once it is first read (the operator's start line)."""

    # -- the working copy --------------------------------------------------------------------------

    @property
    def state(self) -> SourceState:
        """The source's state as this sync has it (read from the store on first use)."""
        if self._state is None:
            self._first_read(self.clock())
        assert self._state is not None
        return self._state

    @state.setter
    def state(self, value: SourceState) -> None:
        self._state = value

    def _apply(self, **changes: Any) -> None:
        """The one place the working copy changes between reads and writes."""
        self._state = self.state.replace(**changes)

    def _reread(self, now: float) -> None:
        """Before a write: the first read, or a re-read that merges a foreign write into ours."""
        if self._state is None:
            self._first_read(now)
            return
        merged = self.stored.merged_into(self._state, now)
        if merged is not None:
            self._state = merged.replace(shares=self._fitted(merged, now))

    def _first_read(self, now: float) -> None:
        self._state = self.stored.load(now)
        if self.on_first_read is not None:
            self.on_first_read(self._state)

    def _write(self, now: float) -> None:
        """Re-read, merge, save."""
        self._reread(now)
        self._save(now)

    def _save(self, now: float) -> None:
        """Save the working copy (right after a re-read)."""
        self._state = self.stored.write(self.state, now)

    # -- admission ---------------------------------------------------------------------------------

    def admit(self) -> Admission:
        """Breaker permission, then a window slot: one of the lease's, or a new lease written before
        the request is sent."""
        now = self.clock()
        self.rate.admitted(now)
        if self._lease_slot(now):
            return Admission(True, message=f"breaker {BreakerState.CLOSED.value}, {ROOM}")
        self._return_unused(self.lease)  # an expired lease's unused slots were never sent
        self.lease = None
        self._reread(now)  # the first read, or a re-read: a foreign write must be merged, not overwritten
        admission, permit, room = self._decide(now)
        self._breaker_moved(permit.transition, permit.snapshot)
        if room is None:  # the breaker refused: nothing else changes
            return admission
        shares = self._fitted(self.state, now)
        if not admission.allowed:  # a window refused: a half-open probe taken above goes back
            self._apply(breaker=breaker.record_neutral(permit.snapshot), shares=shares)
            return admission
        closed = permit.snapshot.state is BreakerState.CLOSED
        slots = lease_size(self.rate, room=room, margin=self.margin_seconds) if closed else 1
        ours = self.config.rate_limit.max_requests
        form = rate_limit.fit(sh.total(shares), now, max_requests=ours, window=self.hold_seconds)
        self._apply(
            breaker=permit.snapshot,
            shares=sh.take(shares, self.tag, now, like=form, count=slots),
            quota=self.quota.spent(self.state, now, slots),
            extra_windows=self.further.taken(self.state, self.tag, now, slots),
        )
        self.lease = Lease(now, slots, self.admission_limit(self.learned_quota(now), now), used=1)
        self.in_flight = InFlight(now, now)
        self._sent(now, self.lease)
        self._save(now)  # re-read above, before deciding
        return admission

    def _lease_slot(self, now: float) -> bool:
        """Send under the lease when it has a usable slot, the breaker is closed and the API's quota is
        not spent (no state call); the slot is the lease's, stamped at its time."""
        lease = self.lease
        if lease is None or self._state is None or self.state.breaker.state is not BreakerState.CLOSED:
            return False
        learned = self.learned_quota(now)
        limit = self.admission_limit(learned, now)
        if not lease.usable(now, self.margin_seconds, self.rate.response, limit):
            return False
        if learned is not None and learned.remaining is not None and learned.remaining < lease.unused:
            return False  # the API reports fewer requests left than the lease holds
        lease.used += 1
        self.in_flight = InFlight(lease.at, now)
        self._sent(now, lease)
        return True

    def _sent(self, now: float, lease: Lease) -> None:
        """Tell the adaptive limit a request goes out, with the requests sent before it in the window."""
        before = self._sent_only(self.state, lease).window.in_window(now, self.hold_seconds) - 1
        self.adaptive.sent(self.state, now, in_window=before)

    def _return_unused(self, lease: Lease | None) -> None:
        """The lease's unused slots leave our share of every window (they were never sent)."""
        if lease is None or lease.unused <= 0:
            return
        sent = self._sent_only(self.state, lease)
        lease.slots = lease.used
        self._apply(shares=sent.shares, extra_windows=sent.extra_windows)

    def _sent_only(self, state: SourceState, lease: Lease) -> SourceState:
        """``state`` without ``lease``'s unused slots, in every window."""
        give = lease.unused
        return state.replace(
            shares=sh.give_back(state.shares, self.tag, lease.at, give),
            extra_windows=tuple(
                (n, sh.give_back(shares, self.tag, lease.at, give)) for n, shares in state.extra_windows
            ),
        )

    def peek(self) -> Admission:
        """What ``admit`` would answer now, without taking a slot or writing anything (dry runs)."""
        return self._decide(self.clock())[0]

    def _decide(self, now: float) -> tuple[Admission, breaker.Permit, int | None]:
        """The answer to "may I send now?", the breaker's permit behind it and the slots left in the
        fullest window (``None`` when the breaker refused; nothing applied)."""
        state = self.state
        permit = breaker.before_request(state.breaker, self.settings, now)
        snapshot = permit.snapshot
        if not permit.allowed:
            wait = max((permit.retry_at or now) - now, 0.0)
            message = (
                f"circuit breaker is {snapshot.state.value} ({snapshot.failure_count} failures, last "
                f"error: {snapshot.last_error}); next probe in {wait:.0f}s"
            )
            return Admission(False, SyncErrorKind.CIRCUIT_BREAKER_OPEN, wait, message), permit, None
        learned = self.learned_quota(now)
        limit = self.admission_limit(learned, now)
        first_wait, message = self._first_window_wait(learned, limit, now)
        further = self.further.wait(state, now) if first_wait == 0 else None
        wait, message = further if further is not None else (first_wait, message)
        spent = quota.wait(learned, now, self.learned_cap)
        if spent > 0 and spent >= wait:  # nothing is left at the API until its reset
            capped = self.quota.capped(learned, now)
            message = f"{quota.SPENT} (remaining 0); it resets in {spent:.1f}s{capped}"
            return Admission(False, SyncErrorKind.RATE_LIMIT_EXCEEDED, spent, message), permit, 0
        if wait > 0:
            return Admission(False, SyncErrorKind.RATE_LIMIT_EXCEEDED, wait, message), permit, 0
        room = limit - state.window.in_window(now, self.hold_seconds)
        further_room = self.further.room(state, now)
        if further_room is not None:
            room = min(room, further_room)
        if learned is not None and learned.remaining is not None:
            room = min(room, learned.remaining)
        return Admission(True, message=f"breaker {snapshot.state.value}, {ROOM}"), permit, room

    def _first_window_wait(self, learned: quota.Quota | None, limit: int, now: float) -> tuple[float, str]:
        """Seconds until the first window (``rate_limit``) has a slot at ``limit`` (0: now), and the
        refusal. A lower limit the API advertised binds only while its report holds (a limit without
        a window counts per ours, but not past its reset)."""
        ours = self.adaptive.limit(self.state, now)  # the configured limit, or the effective one
        wait = self.state.window.room(now, max_requests=ours, window=self.hold_seconds)
        whose = "" if ours == self.config.rate_limit.max_requests else ", the effective limit (adaptive)"
        shown = ours
        if wait == 0 and limit < ours:
            lowered = self.state.window.room(now, max_requests=limit, window=self.hold_seconds)
            end = quota.expires_at(learned, self.learned_cap) if learned is not None else None
            wait = lowered if end is None else min(lowered, max(end - now, 0.0))
            shown, whose = limit, ", the API's advertised limit"
        message = (
            f"rate limit window full ({shown} requests per {self.window_length:.0f}s{whose}); "
            f"next slot in {wait:.1f}s"
        )
        return wait, message

    def admission_limit(self, learned: quota.Quota | None, now: float) -> int:
        """The most requests the first window admits now: ``rate_limit.max_requests`` (or the adaptive
        effective limit), lowered to the limit the API advertised (logged once per sync); never
        raised. Every admission and every lease is decided against this one number."""
        return min(self.quota.advertised_limit(learned, now), self.adaptive.limit(self.state, now))

    def further_windows(self, now: float) -> tuple[FurtherWindow, ...]:
        """Every window besides the first (``hooks.further_windows``)."""
        return self.further.of(self.state, now)

    # -- outcomes ----------------------------------------------------------------------------------

    def record(self, attempt: Attempt) -> None:
        """Hold the attempt's slot from now (its response time); apply its breaker effect; write when
        the count or the state changed, or when the response came later than the safety margin after
        its slot's stamp (else the re-stamped slot rides on the next write)."""
        now = self.clock()
        slow = False
        sent = self.in_flight
        self.in_flight = None
        if sent is not None:
            self.rate.answered(sent.sent, now)
            self.clock_check.check(attempt, sent.sent, now)
            state = self.state
            shares = sh.restamp(state.shares, self.tag, sent.stamp, now)
            slow = now - sent.stamp > self.margin_seconds and shares != state.shares
            extra = tuple(
                (n, sh.restamp(theirs, self.tag, sent.stamp, now)) for n, theirs in state.extra_windows
            )
            self._apply(shares=shares, extra_windows=extra)
        if attempt.quota is not None and self.quota.learns:
            self._apply(quota=self.quota.learned(self.state, attempt.quota, now))
        if attempt.headers and self.quota.learns:
            learned = self.further.learn(self.state, attempt.headers, now)
            if self.lease is not None and learned.learned_windows != self.state.learned_windows:
                self.lease.end()  # a window learned now was not there when the lease was sized
            self._apply(learned_windows=learned.learned_windows, extra_windows=learned.extra_windows)
        if self.adaptive.is_refusal(attempt):  # another worker's decrease first: one per round trip
            self._reread(now)
        adapted, lowered = self.adaptive.after(self.state, attempt, now)
        if lowered and self.lease is not None:
            self.lease.end()  # sized under the limit just lowered
        self._apply(adaptive=adapted.adaptive)
        before = self.state.breaker
        if attempt.effect is BreakerEffect.SUCCESS:
            after, moved = breaker.record_success(before, now)
        elif attempt.effect is BreakerEffect.FAILURE:
            after, moved = breaker.record_failure(before, self.settings, now, attempt.message[:300])
        else:
            after, moved = breaker.record_neutral(before), None
        self._breaker_moved(moved, after)
        # A reset success count in a closed breaker can wait for the final write; the rest cannot.
        if slow or lowered or moved is not None or attempt.effect is BreakerEffect.FAILURE:
            self._write(now)

    def _breaker_moved(self, moved: Transition | None, snapshot: breaker.BreakerSnapshot) -> None:
        """The breaker is now ``snapshot``; a transition is kept, logged and reported."""
        if snapshot != self.state.breaker:
            self._apply(breaker=snapshot)
        if moved is None:
            return
        self.transitions.append(moved)
        self.log.warning(
            "Circuit breaker of %s: %s -> %s (%s)",
            self.config.source,
            moved.source_state.value,
            moved.target_state.value,
            moved.reason,
        )
        if self.on_transition is not None:
            self.on_transition(moved, self.state)

    def finish(self, result: dict[str, Any]) -> None:
        """Store the sync's result with the state (the one write every sync ends with), returning the
        lease's unused slots."""
        now = self.clock()
        self._end_lease()
        self._apply(last_result=result)
        self._write(now)

    def flush(self) -> None:
        """Write what is not written yet (before a deferral), returning the lease's unused slots."""
        self._end_lease()
        if self._state is not None and self._state != self.stored.last:
            self._write(self.clock())

    def _end_lease(self) -> None:
        self._return_unused(self.lease)
        self.lease = None

    # -- what the API said about its quota -----------------------------------------------------------

    def learned_quota(self, now: float) -> quota.Quota | None:
        """What the API said about its quota, while it holds (``hooks.learned_quota``)."""
        return self.quota.current(self.state, now)

    @property
    def learned_long_wait(self) -> quota.Quota | None:
        """A ``remaining 0`` this sync learned whose reset is beyond ``max_wait`` (alerted once)."""
        return self.quota.long_wait

    # -- what the logs and metrics show ------------------------------------------------------------

    @property
    def breaker_open(self) -> bool:
        return self.state.breaker.state is BreakerState.OPEN

    def window_usage(self) -> float:
        """The fullest window's usage (``rate_limit``, its ``extra_windows`` and the learned ones), by
        the requests sent: a lease's unused slots are not counted."""
        state, lease = self.state, self.lease
        if lease is not None and lease.unused > 0:
            state = self._sent_only(state, lease)
        requests, limit, _ = learned_windows.tightest(state, self.config, self.clock())
        return requests / limit

    def _fitted(self, state: SourceState, now: float) -> sh.Shares:
        """Every share pruned and in the form for our limit."""
        limit = self.config.rate_limit.max_requests
        return sh.fit(state.shares, now, max_requests=limit, window=self.hold_seconds)
