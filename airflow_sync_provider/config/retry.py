"""The retry sections: ``backoff`` (waits between retries) and ``circuit_breaker`` (when a source
stops being asked), with their defaults and parse-time checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

from airflow_sync_provider.config.checks import duration, int_at_least, number_in, require

JITTER_STRATEGIES = ("proportional", "full", "decorrelated")
DEFAULT_RESET_MULTIPLIER = 2.0
"""``circuit_breaker.reset_multiplier`` default: the open wait doubles after each failed probe."""
DEFAULT_MAX_RESET_TIMEOUT = timedelta(minutes=50)
"""The open wait's cap when ``circuit_breaker.max_reset_timeout`` is not set: just under an hour, so
an hourly source still probes at every run (bench/README.md, outage, has the measurements)."""


@dataclass(frozen=True, kw_only=True)
class BackoffConfig:
    """Retry waits: ``min(initial_delay * multiplier**n, max_delay)`` with jitter (see ``policy.backoff``)."""

    prefix: ClassVar[str] = "backoff"
    initial_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)
    multiplier: float = 2.0
    jitter_factor: float = 0.1
    strategy: Literal["proportional", "full", "decorrelated"] = "proportional"

    def __post_init__(self) -> None:
        duration(f"{self.prefix}.initial_delay", self.initial_delay, positive=False)
        duration(f"{self.prefix}.max_delay", self.max_delay, positive=False)
        require(
            self.max_delay >= self.initial_delay,
            f"{self.prefix}.max_delay",
            self.max_delay,
            f"must be >= backoff.initial_delay ({self.initial_delay})",
        )
        number_in(f"{self.prefix}.multiplier", self.multiplier, 1, 100, "in [1, 100]")
        number_in(f"{self.prefix}.jitter_factor", self.jitter_factor, 0, 1, "in [0, 1]")
        require(
            self.strategy in JITTER_STRATEGIES,
            f"{self.prefix}.strategy",
            self.strategy,
            f"must be one of {', '.join(JITTER_STRATEGIES)}",
        )


@dataclass(frozen=True, kw_only=True)
class CircuitBreakerConfig:
    """Consecutive-failure breaker: open at ``failure_threshold``, probe after ``reset_timeout``.

    Each failed probe multiplies the wait before the next one by ``reset_multiplier``, up to
    ``max_reset_timeout`` (``None``: ``max(reset_timeout, DEFAULT_MAX_RESET_TIMEOUT)``); the wait
    starts over at ``reset_timeout`` when the breaker closes.
    """

    prefix: ClassVar[str] = "circuit_breaker"
    failure_threshold: int = 5
    reset_timeout: timedelta = timedelta(minutes=5)
    half_open_max_attempts: int = 1
    reset_multiplier: float = DEFAULT_RESET_MULTIPLIER
    max_reset_timeout: timedelta | None = None

    def __post_init__(self) -> None:
        int_at_least(f"{self.prefix}.failure_threshold", self.failure_threshold, 1)
        duration(f"{self.prefix}.reset_timeout", self.reset_timeout)
        int_at_least(f"{self.prefix}.half_open_max_attempts", self.half_open_max_attempts, 1)
        number_in(f"{self.prefix}.reset_multiplier", self.reset_multiplier, 1, 100, "in [1, 100]")
        if self.max_reset_timeout is not None:
            duration(f"{self.prefix}.max_reset_timeout", self.max_reset_timeout)
            require(
                self.max_reset_timeout >= self.reset_timeout,
                f"{self.prefix}.max_reset_timeout",
                self.max_reset_timeout,
                f"must be >= circuit_breaker.reset_timeout ({self.reset_timeout})",
            )

    @property
    def reset_timeout_cap(self) -> timedelta:
        """The longest open wait: ``max_reset_timeout``, or by default the larger of ``reset_timeout`` and
        ``DEFAULT_MAX_RESET_TIMEOUT``."""
        if self.max_reset_timeout is not None:
            return self.max_reset_timeout
        return max(self.reset_timeout, DEFAULT_MAX_RESET_TIMEOUT)
