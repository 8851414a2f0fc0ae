"""A source's further windows: ``rate_limit.extra_windows`` and the ones the API advertised.

Words used here: a *window* is a limit over a length of time (``max_requests`` per ``length``
seconds); its *requests* are kept per writer in the state (``SourceState.extra_windows``, shares as in
``policy.shares``); a request is *held* for the window's length plus the safety margin after it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.policy import advertised, rate_limit
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.state import learned_windows
from airflow_sync_provider.state.store import SourceState


@dataclass(frozen=True)
class FurtherWindow:
    length: float
    limit: int
    hold: float
    """Seconds a request is held: the length plus the safety margin."""
    what: str
    """Where it comes from, as refusals name it."""


class FurtherWindows:
    """Every window of one source besides the first, for one sync (warnings once per sync)."""

    def __init__(self, config: SyncConfig, log: logging.Logger | Any) -> None:
        self.config = config
        self.log = log
        self.first_length = config.rate_limit.window / timedelta(seconds=1)
        self.margin = config.rate_limit.margin / timedelta(seconds=1)
        self.learned_cap = config.rate_limit.learned_wait_cap / timedelta(seconds=1)
        self._warned: set[tuple[int, float]] = set()  # advertised windows warned about

    def of(self, state: SourceState, now: float) -> tuple[FurtherWindow, ...]:
        """``rate_limit.extra_windows`` and the windows the API advertised (``RateLimit-Policy``, while
        learned), by length; one length twice: the lower limit."""
        found: dict[float, tuple[int, str]] = {}
        for w in self.config.rate_limit.extra_windows:
            found[w.seconds] = (w.max_requests, "rate_limit.extra_windows")
        for length, limit, _ in learned_windows.binding(state, self.config, now):
            found[length] = (limit, "advertised by the API")
        return tuple(
            FurtherWindow(n, limit, n + self.margin, what) for n, (limit, what) in sorted(found.items())
        )

    def wait(self, state: SourceState, now: float) -> tuple[float, str] | None:
        """``None`` when every further window has room, else the longest wait among the full ones and
        the refusal that names it."""
        worst: tuple[float, str] | None = None
        for w in self.of(state, now):
            wait = sh.total(state.extra(w.length)).room(now, max_requests=w.limit, window=w.hold)
            if wait > 0 and (worst is None or wait > worst[0]):
                message = (
                    f"rate limit window full ({w.limit} requests per {w.length:.0f}s, {w.what}); "
                    f"next slot in {wait:.1f}s"
                )
                worst = (wait, message)
        return worst

    def room(self, state: SourceState, now: float) -> int | None:
        """Slots left in the fullest further window (``None`` without further windows)."""
        left = [w.limit - sh.total(state.extra(w.length)).in_window(now, w.hold) for w in self.of(state, now)]
        return min(left, default=None)

    def taken(
        self, state: SourceState, tag: str, now: float, count: int
    ) -> tuple[tuple[float, sh.Shares], ...]:
        """``state.extra_windows`` with ``count`` requests of ``tag`` at ``now`` in every further window
        (each pruned and in the form ``fit`` gives it)."""
        taken = {}
        for w in self.of(state, now):
            fitted = sh.fit(state.extra(w.length), now, max_requests=w.limit, window=w.hold)
            form = rate_limit.fit(sh.total(fitted), now, max_requests=w.limit, window=w.hold)
            taken[w.length] = sh.take(fitted, tag, now, like=form, count=count)
        kept = {length: shares for length, shares in state.extra_windows if length not in taken}
        return tuple(sorted({**kept, **taken}.items()))

    def learn(self, state: SourceState, headers: dict[str, str], now: float) -> SourceState:
        """Each window the API advertises (``policy.advertised``) longer than ours binds as a learned
        window for the larger of its length and ``max_learned_wait``; one tighter than the config
        allows over it is warned once per sync, naming both."""
        bare = self.config.rate_limit.advertised_window
        said = advertised.windows(headers, bare_window=bare.total_seconds() if bare else None)
        longer = [w for w in said if w.seconds > self.first_length]
        if not longer:
            return state
        learned = {length: (limit, until) for length, limit, until in state.learned_windows}
        for limit, n, header in longer:
            learned[n] = (limit, now + max(n, self.learned_cap))
            allowed, ours = self._config_allows(n)
            if limit < allowed and (limit, n) not in self._warned:
                self._warned.add((limit, n))
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
        records = dict(state.extra_windows)
        for _, n, _ in longer:
            records.setdefault(n, state.shares)
        return state.replace(
            learned_windows=tuple((n, limit, until) for n, (limit, until) in sorted(learned.items())),
            extra_windows=tuple(sorted(records.items())),
        )

    def _config_allows(self, seconds: float) -> tuple[int, str]:
        """The most requests the configured windows allow in ``seconds``, and the window that says so."""
        limit = self.config.rate_limit
        windows = [(limit.max_requests, self.first_length)] + [
            (w.max_requests, w.seconds) for w in limit.extra_windows
        ]
        allows = [(most * math.ceil(seconds / n) if n < seconds else most, most, n) for most, n in windows]
        allowed, most, n = min(allows)
        return allowed, f"rate_limit {most} per {n:.0f}s"
