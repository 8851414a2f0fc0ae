"""Every error this provider raises, in one hierarchy::

    SyncProviderError
    ├── SyncConfigError (also ValueError)     a config value, YAML file or param is invalid
    ├── SyncStateError                        stored state cannot be used safely (e.g. newer schema)
    ├── SyncSetupError                        pools / connection missing or unusable
    ├── SyncAbort                             ends the current sync with a SyncErrorKind
    └── SyncWaitRequired                      a wait too long to sleep through: defer and resume

``SyncAbort`` and ``SyncWaitRequired`` are control flow between the request layer, handlers and the
operator; handlers must let them propagate.
"""

from __future__ import annotations

from typing import Any


class SyncProviderError(Exception):
    """Base class of every error raised by airflow-sync-provider."""


class SyncConfigError(SyncProviderError, ValueError):
    """An invalid configuration value; the message names the field and the value."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} {expected}, got {value!r}")


class SyncStateError(SyncProviderError):
    """Stored state that must not be used or overwritten (for example a newer schema version)."""


class SyncSetupError(SyncProviderError):
    """The Airflow side is not set up (missing pool or connection)."""


class SyncAbort(SyncProviderError):
    """End the current sync with ``kind`` (a ``SyncErrorKind``)."""

    def __init__(
        self, kind: Any, message: str, *, sent_requests: bool = True, status: int | None = None
    ) -> None:
        self.kind = kind
        self.sent_requests = sent_requests
        self.status = status
        """The HTTP status that ended the sync, when a response did (a child's 404 is skipped)."""
        super().__init__(message)


class SyncWaitRequired(SyncProviderError):
    """A wait of ``seconds`` that should free the worker (deferral); ``reason`` is for the log."""

    def __init__(self, seconds: float, reason: str) -> None:
        self.seconds = seconds
        self.reason = reason
        super().__init__(f"wait {seconds:.1f}s: {reason}")
