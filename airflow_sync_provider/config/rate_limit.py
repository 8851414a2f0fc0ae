"""The ``rate_limit`` section: ``RateLimitConfig``, its defaults and its parse-time checks (the
adaptive settings in ``adaptive_config``, longer windows in ``window_limits``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

from airflow_sync_provider.config import adaptive as adaptive_config
from airflow_sync_provider.config import windows as window_limits
from airflow_sync_provider.config.checks import duration, int_at_least, require
from airflow_sync_provider.config.durations import format_duration
from airflow_sync_provider.config.windows import WindowLimit
from airflow_sync_provider.policy.quota import RESET_FORMS

MAX_WINDOW_ENTRIES = 10_000
DEFAULT_SAFETY_MARGIN = timedelta(seconds=1)
"""``rate_limit.safety_margin`` when unset (capped at a tenth of the window)."""
DEFAULT_MAX_LEARNED_WAIT = timedelta(hours=1)
"""``rate_limit.max_learned_wait`` when unset: the larger of this and the window."""
MAX_LEARNED_WAIT = timedelta(days=366)
"""The longest ``max_learned_wait`` accepted (a reset further away is clamped to it anyway)."""
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_]{0,99}")


@dataclass(frozen=True, kw_only=True)
class RateLimitConfig:
    """Sliding-window limit: never more than ``max_requests`` requests in any ``window``."""

    prefix: ClassVar[str] = "rate_limit"
    max_requests: int = 60
    window: timedelta = timedelta(hours=1)
    safety_margin: timedelta | None = None
    """How long a slot is held past ``window`` after its response arrived, for the time a request
    takes to reach the API; ``None``: ``DEFAULT_SAFETY_MARGIN``, at most a tenth of the window."""

    @property
    def margin(self) -> timedelta:
        """The safety margin in effect."""
        if self.safety_margin is not None:
            return self.safety_margin
        return min(DEFAULT_SAFETY_MARGIN, self.window / 10)

    learn_from_headers: bool = True
    """Obey the quota the API reports (``RateLimit-*``, ``X-RateLimit-*``, ``Retry-After``)."""
    remaining_header: str | None = None
    """An API's own name for the remaining count (e.g. ``x-app-ratelimit-remaining``)."""
    reset_header: str | None = None
    """An API's own name for the reset time; read as ``reset_is`` says."""
    reset_is: Literal["seconds", "epoch", "auto"] = "auto"
    max_learned_wait: timedelta | None = None
    """How long a learned quota is trusted at most after it was learned (then one request goes out to
    find out); ``None``: the larger of ``window`` and ``DEFAULT_MAX_LEARNED_WAIT``."""

    @property
    def learned_wait_cap(self) -> timedelta:
        """The ``max_learned_wait`` in effect."""
        if self.max_learned_wait is not None:
            return self.max_learned_wait
        return max(self.window, DEFAULT_MAX_LEARNED_WAIT)

    adaptive: bool = False
    """Learn a hidden limit: refusals without a usable quota lower the effective limit, sustained
    success raises it (``policy.adaptive``). Accepted and validated; admission uses it from the next
    release."""
    min_requests: int = adaptive_config.DEFAULT_MIN_REQUESTS
    """The adaptive floor: the effective limit never goes below it (nor above ``max_requests``)."""
    adaptive_decrease: float = adaptive_config.DEFAULT_DECREASE
    """The factor a refusal multiplies the effective limit by, in [0.1, 0.95]."""
    extra_windows: tuple[WindowLimit, ...] = ()
    """Longer windows obeyed as well (``window_limits``; the list form of ``rate_limit`` fills it)."""
    advertised_window: timedelta | None = None
    """The window a bare ``X-RateLimit-Limit``/``RateLimit-Limit`` counts over, when the API documents it
    but its headers do not say (GitHub: an hour); with it, that limit binds as a learned window."""

    def __post_init__(self) -> None:
        int_at_least(f"{self.prefix}.max_requests", self.max_requests, 1)
        # the window log is stored in a Variable and read back at most MAX_WINDOW_ENTRIES long
        require(
            self.max_requests <= MAX_WINDOW_ENTRIES,
            f"{self.prefix}.max_requests",
            self.max_requests,
            f"must be <= {MAX_WINDOW_ENTRIES}",
        )
        duration(f"{self.prefix}.window", self.window)
        if self.safety_margin is not None:
            duration(f"{self.prefix}.safety_margin", self.safety_margin, positive=False)
            require(
                self.safety_margin < self.window,
                f"{self.prefix}.safety_margin",
                self.safety_margin,
                f"must be shorter than rate_limit.window ({self.window})",
            )
        require(
            isinstance(self.learn_from_headers, bool),
            f"{self.prefix}.learn_from_headers",
            self.learn_from_headers,
            "must be true or false",
        )
        for name in ("remaining_header", "reset_header"):
            value = getattr(self, name)
            ok = value is None or (isinstance(value, str) and bool(_HEADER_NAME.fullmatch(value)))
            require(ok, f"{self.prefix}.{name}", value, "must be an HTTP header name (letters, digits, -)")
        require(
            self.reset_header is None or self.remaining_header is not None,
            f"{self.prefix}.reset_header",
            self.reset_header,
            "needs rate_limit.remaining_header too",
        )
        require(
            self.reset_is in RESET_FORMS,
            f"{self.prefix}.reset_is",
            self.reset_is,
            f"must be one of {', '.join(RESET_FORMS)}",
        )
        if self.max_learned_wait is not None:
            duration(f"{self.prefix}.max_learned_wait", self.max_learned_wait)
            require(
                self.max_learned_wait <= MAX_LEARNED_WAIT,
                f"{self.prefix}.max_learned_wait",
                self.max_learned_wait,
                f"must be at most {format_duration(MAX_LEARNED_WAIT)}",
            )
        adaptive_config.check(self)
        self._check_extra_windows()
        window_limits.check_advertised_window(self.advertised_window, f"{self.prefix}.advertised_window")

    def _check_extra_windows(self) -> None:
        name = f"{self.prefix}.extra_windows"
        extra = self.extra_windows
        if isinstance(extra, list):
            extra = tuple(extra)
            object.__setattr__(self, "extra_windows", extra)
        require(isinstance(extra, tuple), name, extra, "must be a list of windows")
        require(
            len(extra) <= window_limits.MAX_EXTRA_WINDOWS,
            name,
            extra,
            f"must hold at most {window_limits.MAX_EXTRA_WINDOWS} windows",
        )
        parsed = tuple(window_limits.parse(w, f"{name}[{i}]") for i, w in enumerate(extra))
        object.__setattr__(self, "extra_windows", parsed)
        for i, w in enumerate(parsed):
            require(
                w.window > self.window,
                f"{name}[{i}].window",
                format_duration(w.window) if isinstance(w.window, timedelta) else w.window,
                f"must be longer than {self.prefix}.window ({format_duration(self.window)})",
            )
        window_limits.check(
            [(self.prefix, self.max_requests, self.window)]
            + [(f"{name}[{i}]", w.max_requests, w.window) for i, w in enumerate(parsed)]
        )
