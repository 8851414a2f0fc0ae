"""The outcome of one sync: ``SyncResult`` (the task's XCom value) and ``SyncErrorKind``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SyncErrorKind(StrEnum):
    """Why a sync did not succeed; the names and meanings of the original design."""

    RATE_LIMITED = "RATE_LIMITED"
    """The API answered 429 (or a 403 carrying rate-limit signals: ``Retry-After``, remaining 0)."""
    TIMEOUT = "TIMEOUT"
    """A request exceeded its timeout (or the sync exceeded ``max_sync_duration``)."""
    CIRCUIT_BREAKER_OPEN = "CIRCUIT_BREAKER_OPEN"
    """The source's breaker is open: nothing was sent."""
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    """Our own sliding window is full and no slot frees within ``max_wait``."""
    HTTP_ERROR = "HTTP_ERROR"
    """A non-2xx answer other than a rate limit (after retries where retryable)."""
    CONNECTION_ERROR = "CONNECTION_ERROR"
    """The API could not be reached, or the connection broke mid-response."""
    INVALID_RESPONSE = "INVALID_RESPONSE"
    """The body could not be parsed, had the wrong shape, was too large, or pagination looped."""
    HANDLER_ERROR = "HANDLER_ERROR"
    """A custom handler raised."""


@dataclass(frozen=True)
class SyncResult:
    """One sync's result; ``to_dict()`` is the task's XCom return value."""

    source: str
    success: bool
    items_processed: int
    duration_ms: int
    error: SyncErrorKind | None
    error_message: str | None
    retry_count: int
    started_at: str
    """ISO-8601 UTC timestamp of the sync's start."""
    truncated: bool = False
    """The sync stopped at ``max_pages`` with more pages left (a success, visibly partial)."""
    items_loaded: int = 0
    """Items committed to the destination (``load``); 0 when nothing is loaded."""
    destination: str | None = None
    """Where the items went, e.g. ``duckdb sync.airdrops``; None without ``load``."""
    bookmark: str | int | float | None = None
    """The source's incremental bookmark after this sync (None when not incremental)."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["error"] = self.error.value if self.error else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncResult:
        error = data.get("error")
        return cls(
            source=data["source"],
            success=bool(data["success"]),
            items_processed=int(data["items_processed"]),
            duration_ms=int(data["duration_ms"]),
            error=SyncErrorKind(error) if error else None,
            error_message=data.get("error_message"),
            retry_count=int(data.get("retry_count", 0)),
            started_at=str(data["started_at"]),
            truncated=bool(data.get("truncated", False)),
            items_loaded=int(data.get("items_loaded") or 0),
            destination=data.get("destination"),
            bookmark=data.get("bookmark"),
        )

    def summary(self) -> str:
        """One line: ``✓ src: 42 items in 1234 ms`` / ``✗ src: TIMEOUT: <message>``.

        Loaded items say where they went (``42 items -> duckdb sync.src``); a truncated sync says so
        (``... in 1234 ms (truncated at max_pages)``).
        """
        if self.success:
            where = f" -> {self.destination}" if self.destination else ""
            cut = " (truncated at max_pages)" if self.truncated else ""
            items = plural(self.items_processed, "item")
            return f"✓ {self.source}: {items}{where} in {self.duration_ms} ms{cut}"
        kind = self.error.value if self.error else "UNKNOWN"
        return f"✗ {self.source}: {kind}: {self.error_message}"  # the message says how many retries


def plural(count: int, one: str, many: str = "") -> str:
    """``1 item``, ``2 items``, ``0 items`` (``many`` for irregular plurals: ``retries``)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
