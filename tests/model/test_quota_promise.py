"""Issue 17's proof for learned quotas: hostile reset values, two DAGs that do and do not learn, time.

A hypothesis state machine drives the real operator, guard, hook and ``InMemoryStateStore`` on a fake
clock against ``ScriptedApi`` (zero latency), whose replies carry quota headers: ``X-RateLimit-*`` (read
by magnitude) or the configured pair ``x-app-left`` / ``x-app-reset`` (read as each DAG's ``reset_is``)
with resets that are small deltas, epochs in seconds or milliseconds, just under 1e9, a year, HTTP-dates
(IMF-fixdate, asctime), ISO 8601 times, garbage or missing; and 429s with ``Retry-After`` as seconds, a
year, an asctime date or garbage. Two DAGs of one source (``a`` and ``b``) each learn or not, and
change that between runs; the admin reset runs between syncs.

The promise (checked from the API's request log and an independent reading of what each learning
DAG's responses said):

- ``window``: never more requests at the API than the sender's limit in any trailing window;
- ``early``: a learning DAG never sends while the API's learned ``remaining`` is spent and its reset
  (at most ``max_learned_wait`` after it was learned; without a usable reset, when the window's oldest
  slot frees) has not come; a DAG that does not learn neither reads nor obeys it, but keeps it and its
  requests count against it;
- ``cap``: no learned quota refuses a learning DAG past ``max_learned_wait`` after it was learned.

Knobs: ``MODEL_EXAMPLES`` / ``MODEL_STEPS`` as in ``test_sync_promise`` (fewer by default: this
machine is narrower).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from airflow_sync_provider.config import BackoffConfig, CircuitBreakerConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.policy import quota
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from tests.model import invariants
from tests.model.driver import LOG, Driver, Sync
from tests.model.scripted_api import HOST, ApiAdapter, FakeClock, Reply, ScriptedApi, Wire

SOURCE = "quota_shop"
CONN_ID = "model_quota_api"
WINDOW = 60.0
HOLD = WINDOW + 1.0  # the window plus the default safety margin
CAP = 300.0
MAX_WAIT = 30.0
T0 = 1_800_000_000.0
YEAR = quota.MAX_RESET_SECONDS
EPS = 1e-6

RESET_TAGS = ("delta", "epoch", "ms", "just_under", "huge", "date", "asctime", "iso", "garbage", "none")
RETRY_TAGS = ("secs", "huge", "asctime", "garbage")


@dataclass(frozen=True)
class QuotaReply(Reply):
    """A reply with quota headers, built at answer time (dates are relative to the API's clock)."""

    family: str = "none"
    """``x-rl`` (``X-RateLimit-*``), ``x-app`` (the configured pair) or ``none``."""
    remaining: int = 0
    reset: tuple[str, int] = ("none", 0)
    """A ``RESET_TAGS`` name and its seconds from now."""
    retry: tuple[str, int] | None = None
    """429 only: a ``RETRY_TAGS`` name and its seconds from now."""


def asctime(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%a %b %e %H:%M:%S %Y")


def reset_value(tag: str, seconds: int, now: float) -> str | None:
    at = int(now) + seconds
    return {
        "delta": str(seconds),
        "epoch": str(at),
        "ms": str(at * 1000),
        "just_under": "999999999",
        "huge": "31536000",
        "date": formatdate(at, usegmt=True),
        "asctime": asctime(at),
        "iso": datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z"),
        "garbage": "soon",
        "none": None,
    }[tag]


def retry_value(tag: str, seconds: int, now: float) -> str:
    return {
        "secs": str(seconds),
        "huge": "31536000",
        "asctime": asctime(int(now) + seconds),
        "garbage": "later, maybe",
    }[tag]


def expected_reset(tag: str, seconds: int, now: float, form: str) -> float | None:
    """Independently of ``policy.quota``: when the API's quota comes back, ``None`` when unusable."""
    at = int(now) + seconds
    absolute = {"date": at, "asctime": at, "iso": at}
    if tag in absolute:
        value: float = absolute[tag]
    elif tag in ("garbage", "none"):
        return None
    else:
        number = {"delta": seconds, "epoch": at, "ms": at * 1000, "just_under": 999999999, "huge": 31536000}[
            tag
        ]
        if form == "epoch" or (form == "auto" and number >= 1e9):
            value = number / 1000 if form == "auto" and number >= 1e12 else number
        else:
            value = now + number
    return min(max(value, now), now + YEAR)


class QuotaApi(ScriptedApi):
    """``ScriptedApi`` whose replies carry quota headers; remembers which reply served each request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.serving: Reply = Reply()
        """The reply of the request now arriving (set before ``on_wire`` sees it)."""

    def arrive(self, method: str, url: str) -> tuple[Wire, Reply]:
        self.serving = self.script[0] if self.script else Reply()
        return super().arrive(method, url)

    def answer(self, wire: Wire, reply: Reply) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = super().answer(wire, reply)
        if not isinstance(reply, QuotaReply):
            return status, headers, body
        now = self.clock()
        if reply.retry is not None and status == 429:
            headers["Retry-After"] = retry_value(*reply.retry, now)
        if reply.family != "none" and status == 200:
            prefix = "x-ratelimit-" if reply.family == "x-rl" else "x-app-"
            headers[prefix + ("remaining" if reply.family == "x-rl" else "left")] = str(reply.remaining)
            reset = reset_value(*reply.reset, now)
            if reset is not None:
                headers[prefix + "reset"] = reset
        return status, headers, body


def dag_config(learn: bool, reset_is: str, max_requests: int) -> SyncConfig:
    return SyncConfig(
        source=SOURCE,
        endpoint="/items",
        conn_id=CONN_ID,
        schedule=None,
        rate_limit=RateLimitConfig(
            max_requests=max_requests,
            window=timedelta(seconds=WINDOW),
            learn_from_headers=learn,
            remaining_header="x-app-left",
            reset_header="x-app-reset",
            reset_is=reset_is,  # type: ignore[arg-type]
            max_learned_wait=timedelta(seconds=CAP),
        ),
        backoff=BackoffConfig(
            initial_delay=timedelta(seconds=1), max_delay=timedelta(seconds=4), jitter_factor=0
        ),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=3, reset_timeout=timedelta(seconds=30)),
        timeout=timedelta(seconds=2),
        max_retries=1,
        max_wait=timedelta(seconds=MAX_WAIT),
        max_pages=5,
        defer_after=timedelta(seconds=5),
        max_sync_duration=timedelta(hours=1),
    )


seconds_ahead = st.sampled_from([0, 5, 20, 45, 200, 200, 4000])
told = st.builds(
    QuotaReply,
    kind=st.just("ok"),
    family=st.sampled_from(["x-rl", "x-app", "x-rl", "none"]),
    remaining=st.sampled_from([0, 0, 0, 1, 3]),
    reset=st.tuples(st.sampled_from(RESET_TAGS), seconds_ahead),
)
replies = st.one_of(
    told,
    told,
    told,
    st.builds(
        QuotaReply,
        kind=st.just("429"),
        retry=st.one_of(st.none(), st.tuples(st.sampled_from(RETRY_TAGS), seconds_ahead)),
    ),
)


@dataclass
class Learned:
    """What the API last told a learning DAG, read independently: ``left`` requests until ``until``."""

    left: int
    until: float


class Violation(AssertionError):
    pass


class QuotaPromise(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "http", "host": HOST, "schema": "http"}
        )
        self.clock = FakeClock(T0)
        self.problems: list[tuple[str, str]] = []
        self.syncs: list[Sync] = []
        self.learned: Learned | None = None
        self.checked = 0

    @initialize(
        pages=st.integers(1, 3),
        learn_a=st.just(True),
        learn_b=st.sampled_from([False, False, True]),
        form_a=st.sampled_from(quota.RESET_FORMS),
        form_b=st.sampled_from(quota.RESET_FORMS),
        limit=st.integers(2, 6),
    )
    def setup(self, pages: int, learn_a: bool, learn_b: bool, form_a: str, form_b: str, limit: int) -> None:
        self.api = QuotaApi(self.clock, pages=pages, page_size=1, cursor=False)
        self.store = InMemoryStateStore()
        self.hook = RateLimitedSyncHook(CONN_ID, store=self.store, clock=self.clock)
        self.hook.session.mount("http://", ApiAdapter(self.api))
        self.driver = Driver(self.hook, self.api, self.clock)
        self.driver.on_arrival = self._arrival
        self.dags = {"a": [learn_a, form_a, limit], "b": [learn_b, form_b, limit]}

    def teardown(self) -> None:
        os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)

    def _config(self, dag: str) -> SyncConfig:
        learn, form, limit = self.dags[dag]
        return dag_config(learn, form, limit)

    # -- the independent reading of what the API said ------------------------------------------------

    def _arrival(self, wire: Wire) -> None:
        """At each request's arrival: was it early? Then count it; then learn what its answer says."""
        now = wire.at
        sync = self.syncs[wire.sync]
        learns = sync.config.rate_limit.learn_from_headers
        if self.learned is not None and now >= self.learned.until - EPS:
            self.learned = None
        if self.learned is not None:
            if learns and self.learned.left == 0:
                self.problems.append(
                    ("early", f"sync {sync.id} ({sync.dag}) sent {wire.path} at +{now - T0:.1f}s, "
                     f"{self.learned.until - now:.1f}s before the learned quota's reset")
                )  # fmt: skip
            self.learned.left = max(self.learned.left - 1, 0)
        if learns:
            self._learn(self.api.serving, now, sync.config.rate_limit.reset_is)

    def _learn(self, reply: Reply, now: float, form: str) -> None:
        if not isinstance(reply, QuotaReply):
            return
        if reply.kind == "429":
            if reply.retry is None or reply.retry[0] == "garbage":
                return
            tag, seconds = reply.retry
            at = {"secs": now + seconds, "huge": now + 31536000, "asctime": int(now) + seconds}[tag]
            reset: float | None = min(max(at, now), now + YEAR)
            left = 0
        elif reply.family == "none":
            return
        else:
            reset = expected_reset(*reply.reset, now, form if reply.family == "x-app" else "auto")
            left = reply.remaining
        if reset is None:
            if left == 0:  # no usable reset: until the window's oldest slot frees
                reset = min(w.at for w in self.api.log if w.at > now - HOLD + EPS) + HOLD
            else:
                reset = now + quota.UNDATED_TTL
        self.learned = Learned(left, min(reset, now + CAP))

    # -- rules ---------------------------------------------------------------------------------------

    @property
    def deferred(self) -> Sync | None:
        return next((s for s in self.syncs if s.status == "deferred"), None)

    @precondition(lambda self: self.deferred is None)
    @rule(dag=st.sampled_from(["a", "b"]))
    def sync(self, dag: str) -> None:
        config = self._config(dag)
        sync = Sync(len(self.syncs), dag, "default", config, {})
        self.syncs.append(sync)
        self._run(sync)

    def _run(self, sync: Sync) -> None:
        self.driver.run(sync)
        error = (sync.result or {}).get("error")
        if sync.status == "done" and error not in (None, "RATE_LIMITED", "RATE_LIMIT_EXCEEDED"):
            self.problems.append(("explained", f"sync {sync.id} ended {error}: {sync.result}"))

    @precondition(lambda self: self.deferred is not None)
    @rule()
    def resume(self) -> None:
        sync = self.deferred
        assert sync is not None and sync.resume_at is not None
        self.clock.now = max(self.clock.now, sync.resume_at)
        self._run(sync)

    @precondition(lambda self: self.deferred is None)
    @rule(
        first=st.sampled_from(["a", "b"]),
        reply=told,
        other_first=st.booleans(),
        gap=st.sampled_from([0.0, 0.0, 31.0, 62.0, 120.0]),
    )
    def told_then_other_dag(self, first: str, reply: QuotaReply, other_first: bool, gap: float) -> None:
        """One DAG is told about the quota, the other runs, then the first again (``gap`` s apart)."""
        other = "b" if first == "a" else "a"
        self.api.script.appendleft(reply)
        for dag in (other, first, other, first) if other_first else (first, other, first):
            if self.deferred is not None:
                return
            self.sync(dag)
            self.clock.advance(gap)

    @rule(script=st.lists(replies, min_size=1, max_size=3))
    def script(self, script: list[QuotaReply]) -> None:
        self.api.script.extend(script)

    @rule(dag=st.sampled_from(["a", "b"]), learn=st.booleans(), form=st.sampled_from(quota.RESET_FORMS))
    def reconfigure(self, dag: str, learn: bool, form: str) -> None:
        """``sources.yaml`` changed: the DAG's next runs learn (or not) and read resets as ``form``."""
        self.dags[dag][:2] = [learn, form]

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0, 61.0, 299.0, 600.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.deferred is None)
    @rule()
    def reset_breaker(self) -> None:
        """The admin reset (pool-serialised) forgets the learned quota: the next request finds out."""
        self.hook.reset_circuit_breaker(SOURCE)
        self.learned = None

    # -- invariants ----------------------------------------------------------------------------------

    @invariant()
    def promise_holds(self) -> None:
        if not hasattr(self, "api"):
            return
        log, start = self.api.log, self.checked
        self.problems.extend(("window", m) for m in invariants.window(log, start, WINDOW, set()))
        self.checked = len(log)
        self._capped()
        if self.problems:
            raise Violation("\n".join(f"[{name}] {m}" for name, m in self.problems[:5]))

    def _capped(self) -> None:
        """No learned quota refuses a learning DAG past ``max_learned_wait`` after it was learned."""
        stored = SourceState.from_json(self.store.raw.get(variable_key(SOURCE)), SOURCE).quota
        if stored is None or stored.observed_at is None:
            return
        config = dag_config(True, "auto", self.dags["a"][2])
        admission = self.hook.open_guard(config, log=LOG).peek()
        if admission.allowed or not admission.message.startswith(quota.SPENT):
            return
        end = self.clock() + admission.wait
        if end > stored.observed_at + CAP + EPS:
            self.problems.append(
                ("cap", f"a quota learned at +{stored.observed_at - T0:.1f}s refuses until "
                 f"+{end - T0:.1f}s, past max_learned_wait={CAP:g}s: {admission.message}")
            )  # fmt: skip


def _profile() -> settings:
    ci = os.environ.get("CI") == "true"
    return settings(
        max_examples=int(os.environ.get("MODEL_EXAMPLES", 100 if ci else 30)),
        stateful_step_count=int(os.environ.get("MODEL_STEPS", 25)),
        deadline=None,
        derandomize=ci and os.environ.get("MODEL_RANDOM") != "1",
        database=None,
        phases=[p for p in Phase if p is not Phase.shrink or os.environ.get("MODEL_SHRINK") == "1"],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


TestQuotaPromise = QuotaPromise.TestCase
TestQuotaPromise.settings = _profile()
