"""One sync of one source: guarded requests with bounded retries, waits, and a resumable checkpoint.

``SyncRun.request`` is the rate-limited, breaker-guarded request function handlers receive. It
retries retryable outcomes up to ``max_retries`` with the configured backoff (raised to any
``Retry-After``), sleeps through short waits, and raises ``SyncWaitRequired`` for waits longer than
``defer_after`` so the operator can defer and resume at the same request with the same checkpoint.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.hooks import outcome
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.hooks.sync import CrossHostRedirect, RateLimitedSyncHook
from airflow_sync_provider.policy.backoff import retry_delay
from airflow_sync_provider.results import SyncErrorKind, SyncResult, plural
from airflow_sync_provider.run.urls import wire_url

SECOND = timedelta(seconds=1)


@dataclass
class PageLoop:
    """Where one ``ctx.pages()`` loop stands; its page in hand is finished only when the handler asks for
    the next one, so a resume delivers that page again (at least once)."""

    url: str
    """The URL of the loop's current page (being processed, or next to read) in checkpoint form: the
    connection's secrets replaced by markers (``SyncContext.checkpoint_url``), put back to request it."""
    number: int = 1
    """The current page's number in this loop (1-based; stable across a resume)."""
    delivered: bool = False
    """The handler has had the current page; a resume delivers it again."""
    done: bool = False
    """The last page is finished, or the loop stopped at ``max_pages``: the loop yields nothing again."""
    seen: list[str] = field(default_factory=list)
    """The next-page links or cursors this loop followed (pagination loop detection), checkpoint form."""
    position: dict[str, Any] = field(default_factory=dict)
    """A configured paginator's position of the current page (``pagination``: offset, page, cursor)."""


@dataclass
class Checkpoint:
    """Where a sync stands; JSON-safe so it can ride through a trigger and back, and free of the
    connection's secrets (Airflow stores the trigger's event in plain JSON: ``next_kwargs``)."""

    started_at: float
    retry_count: int = 0
    """Retries so far in this sync (all requests)."""
    retry: int = 0
    """Retries so far of the request in progress (0 when the next request is fresh)."""
    previous_delay: float | None = None
    requests_sent: int = 0
    items: int = 0
    """Items of the finished pages (all ``pages()`` loops)."""
    pages: int = 0
    """Finished pages (all ``pages()`` loops); ``max_pages`` bounds it."""
    truncated: bool = False
    """A ``pages()`` loop stopped at ``max_pages`` with more pages left."""
    loops: dict[str, PageLoop] = field(default_factory=dict)
    """One entry per ``ctx.pages()`` call, keyed ``<path>#<n>`` (the n-th call with that path)."""
    deferrals: int = 0
    handler_data: dict[str, Any] = field(default_factory=dict)
    """Free space for custom handlers to record their own progress across a deferral."""
    load: dict[str, Any] = field(default_factory=dict)
    """Committed loads of this sync (``load.loader``): ``loaded``, ``cursor_max``, ``replaced``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        loop_names = {f.name for f in dataclasses.fields(PageLoop)}
        values["loops"] = {
            key: PageLoop(**{k: v for k, v in loop.items() if k in loop_names})
            for key, loop in (data.get("loops") or {}).items()
        }
        return cls(**values)


class SyncRun:
    """Retries, waits and bookkeeping of one sync; the policy decides, the hook sends."""

    def __init__(
        self,
        config: SyncConfig,
        hook: RateLimitedSyncHook,
        guard: SourceGuard,
        *,
        checkpoint: Checkpoint | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        log: Any,
    ) -> None:
        self.config = config
        self.hook = hook
        self.guard = guard
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.log = log
        self.checkpoint = checkpoint or Checkpoint(started_at=clock())

    # -- the request function handlers get --------------------------------------------------------

    def request(
        self,
        method: str = "GET",
        path_or_url: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        accept: Callable[[Any], str | None] | None = None,
        json_body: Any = None,
        **query: Any,
    ) -> Attempt:
        """Send one logical request (with its retries and redirects); return the successful attempt or raise.

        Every request on the wire, redirect hops included, takes its own window slot and breaker
        permission, and its outcome is recorded. Same-origin redirects are followed up to
        ``max_redirects`` hops (301/302/303 as GET, 307/308 with the method); a loop or one hop too
        many ends as ``INVALID_RESPONSE``. ``accept(body)`` may name what makes a 2xx body unusable
        (e.g. the wrong shape): that attempt is then recorded as an unusable body, not a success.

        Query parameters come as ``params`` and/or keywords (``query``); ``json_body`` is sent as JSON.
        With OAuth2 client credentials, a token is fetched first when this process holds none (its own
        guarded request), and once again when the API answers 401 to the cached one.

        Raises ``SyncAbort`` when the request cannot succeed within the limits and
        ``SyncWaitRequired`` when a wait is long enough to defer.
        """
        return self._request(method, path_or_url, {**(params or {}), **query}, accept, json_body)

    def _request(
        self,
        method: str,
        path_or_url: str | None,
        params: dict[str, Any],
        accept: Callable[[Any], str | None] | None,
        json_body: Any,
        *,
        token_call: bool = False,
    ) -> Attempt:
        cfg = self.config
        cp = self.checkpoint
        try:
            # the token URL is the connection's own setting, on whatever host it names
            url = (
                path_or_url if token_call and path_or_url else self.hook.url_for(path_or_url or cfg.endpoint)
            )
        except CrossHostRedirect as exc:
            raise SyncAbort(
                SyncErrorKind.INVALID_RESPONSE, str(exc), sent_requests=cp.requests_sent > 0
            ) from exc
        visited = {wire_url(url, params)}
        refreshed = False
        while True:
            if not token_call and self.hook.oauth is not None and self.hook.cached_token() is None:
                self._fetch_token()
            self._check_budget(0.0)
            admission = self.guard.admit()
            if not admission.allowed:
                if admission.kind is SyncErrorKind.CIRCUIT_BREAKER_OPEN:
                    raise SyncAbort(admission.kind, admission.message, sent_requests=cp.requests_sent > 0)
                if admission.wait > cfg.max_wait / SECOND:
                    raise SyncAbort(
                        SyncErrorKind.RATE_LIMIT_EXCEEDED,
                        f"{admission.message}, beyond max_wait={cfg.max_wait / SECOND:g}s",
                        sent_requests=cp.requests_sent > 0,
                    )
                self._check_budget(admission.wait)
                self.log.info(
                    "Rate limit window of %s is full: waiting %.1fs for a slot", cfg.source, admission.wait
                )
                self._wait(admission.wait, "rate limit window full")
                continue
            cp.requests_sent += 1
            attempt = self._send(method, url, params or None, accept, json_body, token_call)
            if attempt.redirect_to is not None:
                kept = method
                method, url, _ = self._redirect(method, attempt, visited)
                params, json_body = {}, json_body if method == kept else None
                continue
            if attempt.ok:
                cp.retry, cp.previous_delay = 0, None
                return attempt
            if attempt.status == 401 and self.hook.oauth is not None and not token_call and not refreshed:
                refreshed = True  # the cached token was revoked or expired early: one new token, one resend
                self.hook.forget_token()
                self.log.info("%s: 401 with the cached OAuth2 token; fetching a new one", cfg.source)
                continue
            self._retry_or_abort(attempt)

    def _fetch_token(self) -> None:
        """Ask the connection's token endpoint for a token, through the guard like any request."""
        oauth = self.hook.oauth
        assert oauth is not None
        attempt = self._request("POST", oauth.token_url, {}, self.hook.token_problem, None, token_call=True)
        self.hook.keep_token(attempt.body)

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        accept: Callable[[Any], str | None] | None,
        json_body: Any = None,
        token_call: bool = False,
    ) -> Attempt:
        """One request on the wire (its slot already taken); its outcome is recorded whatever happens."""
        try:
            if json_body is None and not token_call:  # the call every handler and test double knows
                attempt = self.hook.send(self.config, method, url, params)
            else:
                attempt = self.hook.send(
                    self.config, method, url, params, json_body=json_body, token_call=token_call
                )
            problem = accept(attempt.body) if accept is not None and attempt.ok else None
        except BaseException as exc:  # a bug or an interrupt: still release a half-open probe
            self.guard.record(outcome.invalid(f"{method}: send raised {type(exc).__name__}", None))
            raise
        if problem is not None:
            shown = self.hook.redact(url, self.config)
            failure = self.config.invalid_response_is_failure
            attempt = outcome.unusable_body(
                f"{method} {shown}: {problem}", attempt.status, is_failure=failure
            )
        self.guard.record(attempt)
        self._log_attempt(method, url, attempt)
        return attempt

    def _redirect(self, method: str, attempt: Attempt, visited: set[str]) -> tuple[str, str, None]:
        """The next hop of a redirect (method, URL, no params), or ``SyncAbort`` for a loop or too many."""
        target = attempt.redirect_to or ""
        shown = self.hook.redact(target, self.config)
        if target in visited:
            raise SyncAbort(
                SyncErrorKind.INVALID_RESPONSE, f"{attempt.message}: redirect loop ({shown} again)"
            )
        if len(visited) > self.config.max_redirects:
            raise SyncAbort(
                SyncErrorKind.INVALID_RESPONSE,
                f"{attempt.message}: more than max_redirects={self.config.max_redirects} redirects",
            )
        visited.add(target)
        keeps = attempt.status in outcome.METHOD_KEEPING_REDIRECTS or method.upper() == "HEAD"
        return (method if keeps else "GET"), target, None

    def _retry_or_abort(self, attempt: Attempt) -> None:
        cfg, cp = self.config, self.checkpoint
        kind = attempt.kind or SyncErrorKind.HTTP_ERROR
        if not attempt.retryable:
            raise SyncAbort(kind, attempt.message, status=attempt.status)
        if self.guard.breaker_open:
            failures = self.guard.state.breaker.failure_count
            raise SyncAbort(kind, f"{attempt.message}; circuit breaker opened after {failures} failures")
        if cp.retry >= cfg.max_retries:
            raise SyncAbort(kind, f"{attempt.message}; gave up after {plural(cp.retry, 'retry', 'retries')}")
        b = cfg.backoff
        delay = retry_delay(
            cp.retry,
            strategy=b.strategy,
            initial=b.initial_delay / SECOND,
            multiplier=b.multiplier,
            cap=b.max_delay / SECOND,
            jitter_factor=b.jitter_factor,
            rng=self.rng,
            previous=cp.previous_delay,
        )
        why = f"backoff for retry {cp.retry + 1}/{cfg.max_retries}"
        if attempt.retry_after is not None and attempt.retry_after > delay:
            delay, why = attempt.retry_after, f"Retry-After {attempt.retry_after:g}s (retry {cp.retry + 1})"
        if delay > cfg.max_wait / SECOND:
            raise SyncAbort(kind, f"{attempt.message}; {why} is beyond max_wait={cfg.max_wait / SECOND:g}s")
        self._check_budget(delay)  # before counting: a retry the budget forbids is never sent
        cp.retry += 1
        cp.retry_count += 1
        cp.previous_delay = delay
        self.log.info("%s: waiting %.2fs before retrying (%s)", cfg.source, delay, why)
        self._wait(delay, why)

    def _wait(self, seconds: float, reason: str) -> None:
        """Sleep through a short wait or defer a long one (the caller has checked the budget)."""
        if seconds > self.config.defer_after / SECOND:
            raise SyncWaitRequired(seconds, reason)
        if seconds > 0:
            self.sleep(seconds)

    def _check_budget(self, upcoming_wait: float) -> None:
        cp = self.checkpoint
        elapsed = self.clock() - cp.started_at
        limit = self.config.max_sync_duration / SECOND
        if elapsed + upcoming_wait > limit:
            raise SyncAbort(
                SyncErrorKind.TIMEOUT,
                f"sync would exceed max_sync_duration={limit:g}s (elapsed {elapsed:.0f}s, next wait "
                f"{upcoming_wait:.0f}s)",
                sent_requests=cp.requests_sent > 0,
            )

    def _log_attempt(self, method: str, url: str, attempt: Attempt) -> None:
        """One line per request on the wire; a failed one at WARNING, its URL once."""
        b = self.guard.state.breaker
        threshold = self.config.circuit_breaker.failure_threshold
        said = attempt.quota.remaining if attempt.quota is not None else None
        verdict, request = _verdict(attempt), f"{method} {self.hook.redact(url, self.config)}"
        failed = not attempt.ok and attempt.redirect_to is None
        (self.log.warning if failed else self.log.info)(
            "%s | breaker %s %d/%d | window %.0f%%%s%s%s (attempt %d)",
            _verdict(attempt),
            b.state.value,
            b.failure_count,
            threshold,
            100 * self.guard.window_usage(),
            self.guard.adaptive.note(self.guard.state, self.clock()),  # " | effective 42/60" (adaptive)
            "" if said is None else f" | API {said} left",
            "" if request in verdict else f" | {request}",  # a failure's message names the request
            self.checkpoint.retry + 1,
        )

    # -- the result ---------------------------------------------------------------------------------

    def result(self, *, items: int, error: SyncAbort | None) -> SyncResult:
        cp = self.checkpoint
        started = cp.started_at
        return SyncResult(
            source=self.config.source,
            success=error is None,
            items_processed=items,
            duration_ms=max(0, round((self.clock() - started) * 1000)),
            error=SyncErrorKind(error.kind) if error is not None else None,
            error_message=str(error) if error is not None else None,
            retry_count=cp.retry_count,
            started_at=datetime.fromtimestamp(started, tz=UTC).isoformat(),
            truncated=cp.truncated,
        )


def _verdict(attempt: Attempt) -> str:
    if attempt.ok:
        return "ok"
    if attempt.redirect_to is not None:
        return f"redirect ({attempt.message})"
    return f"{attempt.kind} ({attempt.message})"
