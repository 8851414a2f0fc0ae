"""Read a response body within a size limit and a deadline (the hook's ``send``)."""

from __future__ import annotations

import time

import requests
import urllib3


class TooLarge(Exception):
    """The body is larger than the limit (declared or read)."""


class Deadline(Exception):
    """The body did not arrive within the deadline."""


def read_bounded(response: requests.Response, limit: int, started: float, deadline: float) -> bytes:
    """The body of ``response``, at most ``limit`` bytes and read before ``deadline`` seconds after
    ``started`` (``time.monotonic``); ``TooLarge`` or ``Deadline`` otherwise."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        # read1: what has arrived (one socket read), so a trickling body is cut at the deadline, not
        # after a whole 64 KiB buffer has filled; iter_content would also turn a stalled read into a
        # ConnectionError
        try:
            chunk = response.raw.read1(64 * 1024, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise Deadline from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge
        if time.monotonic() - started > deadline:
            raise Deadline
        chunks.append(chunk)
