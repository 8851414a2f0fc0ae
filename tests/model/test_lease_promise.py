"""Issue 20 item 5: the promise of ``test_sync_promise`` with leased slots in play.

The same state machine and invariants (never over a sender's limit at the API, judged from the API's
request log; nothing lost), plus a ``bulk`` DAG whose limit (8-24 per 60 s) is large enough for a
guard to lease several slots in one write (``hooks.lease``), and rules for what can happen to a lease:
taken and partly used (fewer pages than slots), the worker crashing while it holds one, a write by a
writer outside the pool between two leases, and the limit tightened while a crashed worker's lease is
still held. Knobs as in ``test_sync_promise`` (``MODEL_EXAMPLES``, ``MODEL_STEPS``, ...).
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from airflow_sync_provider.hooks.lease import ROOM_SHARE
from airflow_sync_provider.run.sync_run import SyncRun
from tests.model.driver import LOG, CrashPlan, Sync
from tests.model.test_sync_promise import (
    FEATURES,
    OUTSIDE_WRITER,
    USED_HANDLERS,
    SyncPromise,
    _profile,
    base_config,
    crashes,
)

BULK_WAIT = 120.0
"""The bulk DAG defers every window wait (< 60 s), like hourly."""


class LeasePromise(SyncPromise):
    bulk_limit = 16

    @initialize(limit=st.integers(8, 24))
    def bulk(self, limit: int) -> None:
        self.bulk_limit = limit
        # a stale read outside the pool can miss a whole lease write, not one slot (README: leases)
        self.stale_slots = max(1, (limit - 1) // ROOM_SHARE)

    def _new_sync(self, dag: str, handler: str, max_requests: int | None, max_pages: int | None) -> Sync:
        if dag != "bulk":
            return super()._new_sync(dag, handler, max_requests, max_pages)
        sync = Sync(len(self.syncs), dag, handler, base_config(self.bulk_limit, BULK_WAIT), {})
        self.syncs.append(sync)
        return sync

    def _direct(self, sync: Sync, writer: str) -> SyncRun:
        """A run of ``sync`` driven request by request (not through the operator)."""
        guard = self.hook.open_guard(sync.config, log=LOG, writer=writer)
        return SyncRun(sync.config, self.hook, guard, clock=self.clock, sleep=self.clock.advance, log=LOG)

    def _finish(self, run: SyncRun, sync: Sync) -> None:
        self.store.merged = True  # a closing save may merge another writer's breaker
        run.guard.finish(run.result(items=0, error=None).to_dict())
        sync.status = "done"

    @precondition(lambda self: self.deferred is None)
    @rule(handler=st.sampled_from(USED_HANDLERS), crash=crashes)
    def lease(self, handler: str, crash: CrashPlan | None) -> None:
        """A bulk sync through the operator: it leases several slots once it knows its page rate and
        uses some (a sync of fewer pages returns the rest at its end; a crash leaves its lease held)."""
        self._run(self._new_sync("bulk", handler, None, None), crash)

    @precondition(lambda self: self.deferred is None and "outside" in FEATURES)
    @rule(before=st.integers(2, 4), after=st.integers(1, 8), gap=st.sampled_from([0.0, 0.2, 5.0]))
    def foreign_between_leases(self, before: int, after: int, gap: float) -> None:
        """A bulk sync holds a lease; a writer outside the pool sends and writes; the bulk sync goes on
        (its next lease write re-reads and merges) and ends."""
        bulk = self._new_sync("bulk", "default", None, None)
        stale = self._new_sync("hourly", "default", None, None)
        self.outside.add(stale.id)
        ours = self._direct(bulk, f"lease/{bulk.id}")
        self._send_each(ours, bulk, [f"/detail/lease-{k}" for k in range(before)])
        self.clock.advance(gap)
        theirs = self._direct(stale, f"{OUTSIDE_WRITER}{stale.id}")
        self._send_each(theirs, stale, ["/detail/between"])
        self._finish(theirs, stale)
        self.store.merged = True  # the bulk sync's next save merges the outside writer's breaker
        self._send_each(ours, bulk, [f"/detail/lease-{k}" for k in range(before, before + after)])
        self._finish(ours, bulk)

    @precondition(lambda self: self.deferred is None)
    @rule(sent=st.integers(2, 4), handler=st.sampled_from(USED_HANDLERS))
    def crash_holding_lease(self, sent: int, handler: str) -> None:
        """A bulk worker dies holding a lease (no finish); an hourly sync runs next: the lease's unused
        slots count against it as sent requests would."""
        bulk = self._new_sync("bulk", "default", None, None)
        self._send_each(
            self._direct(bulk, f"lease/{bulk.id}"), bulk, [f"/detail/crash-{k}" for k in range(sent)]
        )
        bulk.status = "crashed"
        self._run(self._new_sync("hourly", handler, None, None), None)

    @precondition(lambda self: self.deferred is None)
    @rule(sent=st.integers(2, 4), lower=st.integers(1, 8), handler=st.sampled_from(USED_HANDLERS))
    def tighten_mid_lease(self, sent: int, lower: int, handler: str) -> None:
        """A bulk worker dies holding a lease, the bulk DAG's limit is lowered (sources.yaml), and its
        next run, at the lower limit, must count the held slots."""
        bulk = self._new_sync("bulk", "default", None, None)
        self._send_each(
            self._direct(bulk, f"lease/{bulk.id}"), bulk, [f"/detail/tight-{k}" for k in range(sent)]
        )
        bulk.status = "crashed"
        self.bulk_limit = min(lower, self.bulk_limit)
        self._run(self._new_sync("bulk", handler, None, None), None)


TestLeasePromise = LeasePromise.TestCase
TestLeasePromise.settings = _profile()
