"""Fault model of the demo API: validated fault specs, their effect on a response, and a registry.

A fault applies to one source or, with ``source`` None, to every source; a source's own fault wins
over the global one. With ``count`` set, a fault applies to the next ``count`` matching requests and
then clears itself.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_sync_provider.demo.catalog import huge_body, is_source_name

DEFAULT_REDIRECT = "http://127.0.0.2:9/{source}"

_REQUIRED = object()


class FaultError(ValueError):
    """A fault spec is invalid; ``field`` and ``value`` name the offending input."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        super().__init__(f"invalid {field} {value!r}: {reason}")
        self.field = field
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field, "value": self.value}


def number_field(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultError(name, value, "must be a number")
    if value < low or (low_open and value == low) or value > high:
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise FaultError(name, value, f"must be {bound} and <= {high:g}")
    return float(value)


def integer_field(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultError(name, value, f"must be an integer from {low} to {high}")
    return value


def _header(name: str, value: Any, *, nullable: bool) -> str | None:
    """A raw header value: any one-line latin-1 string (numbers are stringified); None if nullable."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FaultError(name, value, "must be a string" + (" or null" if nullable else ""))
    text = str(value)
    if any(ch in text for ch in "\r\n\0") or len(text) > 2048:
        raise FaultError(name, value, "must be one header line of at most 2048 characters")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise FaultError(name, value, "must be latin-1 text") from None
    return text


def _location(value: Any) -> str | None:
    if value == "":
        raise FaultError("location", value, "must not be empty")
    return _header("location", value, nullable=False)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "retry_after": lambda v: _header("retry_after", v, nullable=True),
    "delay": lambda v: number_field("delay", v, 0, 3600),
    "size_mb": lambda v: number_field("size_mb", v, 0, 256, low_open=True),
    "chunk_size": lambda v: integer_field("chunk_size", v, 1, 1 << 20),
    "status_code": lambda v: integer_field("status_code", v, 200, 599),
    "location": _location,
}

# mode -> {option: default}; _REQUIRED marks options without a default.
MODE_OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "outage": {"retry_after": None},
    "error": {},
    "rate_limit": {"retry_after": "30"},
    "slow": {"delay": 5.0},
    "trickle": {"delay": 1.0, "chunk_size": 256},
    "malformed": {},
    "wrong_shape": {},
    "huge": {"size_mb": 10.0},
    "reset": {},
    "loop": {},
    "redirect": {"location": DEFAULT_REDIRECT},
    "not_found": {},
    "status": {"status_code": _REQUIRED, "retry_after": None},
}
MODES: tuple[str, ...] = tuple(MODE_OPTIONS)


@dataclass
class Fault:
    """An active fault. ``remaining`` is None for a fault that stays until cleared."""

    mode: str
    source: str | None = None
    remaining: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.source, "remaining": self.remaining, **self.options}


@dataclass(frozen=True)
class Effect:
    """How to answer one request: a canned response, or the requested page delivered some way."""

    status: int = 200
    body: bytes | None = None  # None: the requested page
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # wait this long before answering
    chunk_size: int = 0  # > 0: send the body in chunks of this size ...
    chunk_delay: float = 0.0  # ... this many seconds apart
    reset: bool = False  # send the headers and half the body, then a TCP reset
    loop_cursor: str | None = None  # force next_cursor and the Link to this cursor


_STATUS = {"outage": 503, "error": 500, "rate_limit": 429, "not_found": 404, "status": 0}
_MALFORMED = b'{"items": [{"id": "%s-0001", <html><body>502 Bad Gateway</body></html>'


def effect(fault: Fault | None, source: str) -> Effect:
    """The Effect of ``fault`` (None: a normal answer) on a request for ``source``."""
    if fault is None:
        return Effect()
    mode, opts = fault.mode, fault.options
    retry = {"Retry-After": opts["retry_after"]} if opts.get("retry_after") is not None else {}
    if mode in _STATUS:
        code = _STATUS[mode] or opts["status_code"]
        body = json.dumps({"error": f"simulated {mode}", "status": code}).encode()
        return Effect(status=code, body=b"" if code in (204, 304) else body, headers=retry)
    if mode == "redirect":
        location = opts["location"].replace("{source}", source)
        body = json.dumps({"error": "moved", "location": location}).encode()
        return Effect(status=302, body=body, headers={"Location": location})
    if mode == "malformed":
        return Effect(body=_MALFORMED % source.encode())
    if mode == "wrong_shape":
        return Effect(body=b'{"data": 5}')
    if mode == "huge":
        return Effect(body=huge_body(source, int(opts["size_mb"] * 1024 * 1024)))
    if mode == "slow":
        return Effect(delay=opts["delay"])
    if mode == "trickle":
        return Effect(chunk_size=opts["chunk_size"], chunk_delay=opts["delay"])
    if mode == "reset":
        return Effect(reset=True)
    if mode == "loop":
        return Effect(loop_cursor="0")
    raise ValueError(f"mode {mode!r} has no effect")


def parse_fault(spec: Mapping[str, Any]) -> Fault:
    """Validate a fault spec (``mode``, optional ``source``/``count``, mode options) into a Fault."""
    mode = spec.get("mode")
    if not isinstance(mode, str) or mode not in MODE_OPTIONS:
        raise FaultError("mode", mode, f"must be one of {', '.join(MODES)}")
    source = spec.get("source")
    if source is not None and (not isinstance(source, str) or not is_source_name(source)):
        raise FaultError("source", source, "must match [a-z][a-z0-9_]{0,62} or be omitted")
    count = spec.get("count")
    if count is not None:
        count = integer_field("count", count, 1, 1_000_000)
    allowed = MODE_OPTIONS[mode]
    options: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("mode", "source", "count"):
            continue
        if key not in allowed:
            names = ", ".join(allowed) or "none"
            raise FaultError(key, value, f"is not an option of mode {mode!r} (options: {names})")
        options[key] = _VALIDATORS[key](value)
    for key, default in allowed.items():
        if key not in options:
            if default is _REQUIRED:
                raise FaultError(key, None, f"is required for mode {mode!r}")
            options[key] = default
    return Fault(mode=mode, source=source, remaining=count, options=options)


class FaultRegistry:
    """At most one fault per scope (a source, or None for all sources); safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str | None, Fault] = {}

    def set(self, fault: Fault) -> int:
        """Install ``fault`` (replacing its scope's fault). Mode ``none`` clears instead; returns cleared."""
        if fault.mode == "none":
            return self.clear(fault.source)
        with self._lock:
            self._faults[fault.source] = fault
        return 0

    def clear(self, source: str | None = None) -> int:
        """Clear every fault, or only ``source``'s own fault; return how many were removed."""
        with self._lock:
            if source is None:
                cleared = len(self._faults)
                self._faults.clear()
                return cleared
            return 1 if self._faults.pop(source, None) is not None else 0

    def take(self, source: str) -> Fault | None:
        """The fault to apply to one request for ``source``, consuming one use of a counted fault."""
        with self._lock:
            scope: str | None = source if source in self._faults else None
            fault = self._faults.get(scope)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[scope]
            return Fault(fault.mode, source, fault.remaining, dict(fault.options))

    def active(self) -> list[dict[str, Any]]:
        """The active faults as JSON-ready dicts."""
        with self._lock:
            return [f.to_dict() for f in self._faults.values()]
