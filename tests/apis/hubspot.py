"""HubSpot's CRM v3 object lists, emulated from HubSpot's public documentation:

- developers.hubspot.com/docs/guides/crm/using-object-apis and the objects' "List" reference
  (developers.hubspot.com/docs/api-reference, crm objects): ``GET /crm/v3/objects/<objectType>`` for
  ``contacts``, ``companies``, ``deals``; ``limit`` (default 10, at most 100), ``after`` (the cursor
  of the page before), ``properties`` (a comma-separated list), ``archived``; the answer is
  ``{"results": [{"id", "properties", "createdAt", "updatedAt", "archived"}], "paging": {"next":
  {"after", "link"}}}`` with ``paging`` left out on the last page.
- developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines (API usage guidelines and
  limits): a private app sends its access token as a bearer token; 100 requests per 10 seconds per
  app on Free and Starter (190 on Professional and Enterprise) and 250,000 a day per account; every
  answer carries ``X-HubSpot-RateLimit-Daily``, ``-Daily-Remaining``, ``-Interval-Milliseconds``
  (10000), ``-Max`` and ``-Remaining`` (the 10-second window's); beyond a limit a 429 whose JSON
  names it: ``{"status": "error", "message", "errorType": "RATE_LIMIT", "correlationId",
  "policyName"}``. A request without a valid token is a 401 with ``category:
  INVALID_AUTHENTICATION``.

The quota is the account's, across every object: ``enforce`` counts all three lists in one window.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlencode

from tests.apis import Answer, EmulatedApi, Seen, bearer

OBJECTS = ("contacts", "companies", "deals")
TEN_SECONDS, DAILY = 100, 250_000
_PROPERTIES = {
    "contacts": lambda i: {"email": f"contact{i}@example.com", "firstname": f"Ada{i}", "lastname": "Byron"},
    "companies": lambda i: {"name": f"Company {i}", "domain": f"company{i}.example.com"},
    "deals": lambda i: {
        "dealname": f"Deal {i}",
        "amount": str(1000 + i),
        "dealstage": "appointmentscheduled",
    },
}


def _error(status: int, message: str, **fields: Any) -> Answer:
    return Answer(
        status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), **fields}
    )


def _cursor(index: int) -> str:
    """HubSpot's ``after`` is opaque; here the index of the next object, base64 (as HubSpot's look)."""
    return base64.b64encode(str(index).encode()).decode()


class HubSpot(EmulatedApi):
    """The CRM lists of one account: ``counts`` objects per type; ``token`` is a private app's."""

    def __init__(
        self, counts: dict[str, int], token: str = "pat-na1-7c3e0b2a-4f51-4d8e-9a3b-hubspot"
    ) -> None:
        super().__init__()
        self.token = token
        self.objects: dict[str, list[dict[str, Any]]] = {
            kind: [
                {
                    "id": str(1000 * (n + 1) + i),
                    "properties": _PROPERTIES[kind](i),
                    "createdAt": f"2026-0{n + 1}-01T00:00:{i % 60:02d}.000Z",
                    "updatedAt": f"2026-0{n + 1}-02T00:00:{i % 60:02d}.000Z",
                    "archived": False,
                }
                for i in range(1, counts.get(kind, 0) + 1)
            ]
            for n, kind in enumerate(OBJECTS)
        }

    def quota_headers(self) -> dict[str, str]:
        """The account's daily count and the 10-second window's: requests admitted in the last 10 s of
        the ``enforce`` clock (without ``enforce`` every answer reports a fresh window)."""
        recent = 1
        if self._quota is not None:
            now = self._quota[2]()
            recent = sum(1 for t in self.admitted if t > now - 10)
        return {
            "X-HubSpot-RateLimit-Daily": str(DAILY),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, DAILY - len(self.log))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(TEN_SECONDS),
            "X-HubSpot-RateLimit-Remaining": str(max(0, TEN_SECONDS - recent)),
        }

    def rate_limited(self) -> Answer:
        return _error(
            429,
            "You have reached your ten_secondly_rolling limit.",
            errorType="RATE_LIMIT",
            policyName="TEN_SECONDLY_ROLLING",
        )

    def answer(self, seen: Seen) -> Answer:
        if bearer(seen.headers) != self.token:
            return _error(401, "Authentication credentials not found.", category="INVALID_AUTHENTICATION")
        kind = seen.path.removeprefix("/crm/v3/objects/")
        if seen.method != "GET" or kind not in self.objects:
            return _error(404, "Resource not found", category="OBJECT_NOT_FOUND")
        limit = int(seen.query.get("limit", 10))
        if not 1 <= limit <= 100:
            return _error(400, f"limit must be between 1 and 100, got {limit}", category="VALIDATION_ERROR")
        after = seen.query.get("after")
        start = 0 if after is None else int(base64.b64decode(after).decode())
        rows = self.objects[kind]
        body: dict[str, Any] = {"results": rows[start : start + limit]}
        if start + limit < len(rows):
            query = {**seen.query, "after": _cursor(start + limit)}
            body["paging"] = {
                "next": {"after": _cursor(start + limit), "link": f"{self.url}{seen.path}?{urlencode(query)}"}
            }
        return Answer(200, body)
