"""GitHub's REST API (repositories and their issues), emulated from GitHub's public documentation:

- docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api: ``per_page`` (default 30,
  at most 100) and ``page`` (from 1); while pages remain, a ``Link`` header with absolute URLs,
  ``rel="next"`` and ``rel="last"`` (left out when everything fits on one page).
- docs.github.com/rest/repos/repos (list organization repositories, list repositories for the
  authenticated user): ``GET /orgs/<org>/repos`` and ``GET /user/repos``, a JSON list of repositories
  with ``id``, ``name``, ``full_name``.
- docs.github.com/rest/issues/issues (list repository issues): ``GET /repos/<owner>/<repo>/issues``
  with ``state`` (``open`` by default, ``closed``, ``all``) and ``since`` (only issues updated at or
  after, ISO 8601); a repository it does not know (deleted, or no longer visible to the token) is a
  404 ``{"message": "Not Found", "documentation_url"}``.
- docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api: a token is sent as
  ``Authorization: Bearer``; 5,000 requests an hour; every answer carries ``X-RateLimit-Limit``,
  ``-Remaining``, ``-Used``, ``-Reset`` (epoch seconds) and ``-Resource: core``; a secondary rate limit
  is a 403 or a 429 with ``Retry-After`` (``throttle_at(n, status=403)``); a bad token is a 401 ``Bad
  credentials``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.apis import Answer, EmulatedApi, Seen, bearer, error_answer

DOCS = "https://docs.github.com/rest"
HOUR_LIMIT = 5000
T0 = datetime(2027, 3, 1, tzinfo=UTC)


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHub(EmulatedApi):
    """``repos``: repository full name -> issue count; ``token`` as a bearer token. The repositories
    are the organization ``org``'s and the authenticated user's; every ``closed_every``-th issue of a
    repository is closed (0: none)."""

    def __init__(
        self,
        repos: dict[str, int],
        token: str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        org: str = "octo",
        closed_every: int = 0,
    ) -> None:
        super().__init__()
        self.token, self.org = token, org
        self.repos = [
            {"id": i, "name": name.split("/", 1)[1], "full_name": name} for i, name in enumerate(repos, 1)
        ]
        self.issues: dict[str, list[dict[str, Any]]] = {}
        for r, (name, count) in enumerate(repos.items(), 1):
            self.issues[name] = [
                {
                    "id": 1_000_000 * r + n,
                    "number": n,
                    "repo": name,
                    "title": f"issue {n} of {name}",
                    "state": "closed" if closed_every and n % closed_every == 0 else "open",
                    "updated_at": _at(10 * r + n),
                }
                for n in range(count, 0, -1)  # newest first, as GitHub sorts by default
            ]

    def touch(self, name: str, number: int, updated_at: str) -> None:
        """Issue ``number`` of ``name`` edited at ``updated_at`` (``since`` finds it again)."""
        for issue in self.issues[name]:
            if issue["number"] == number:
                issue["updated_at"] = updated_at

    def quota_headers(self) -> dict[str, str]:
        used = len(self.log)
        return {
            "X-RateLimit-Limit": str(HOUR_LIMIT),
            "X-RateLimit-Remaining": str(HOUR_LIMIT - used),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Resource": "core",
        }

    def rate_limited(self) -> Answer:
        message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        return error_answer(
            429, message=message, documentation_url=f"{DOCS}/overview/rate-limits-for-the-rest-api"
        )

    def answer(self, seen: Seen) -> Answer:
        if bearer(seen.headers) != self.token:
            return error_answer(401, message="Bad credentials", documentation_url=DOCS)
        if seen.path in ("/user/repos", f"/orgs/{self.org}/repos"):
            rows = self.repos
        elif seen.path.startswith("/repos/") and seen.path.endswith("/issues"):
            name = seen.path[len("/repos/") : -len("/issues")]
            if name not in self.issues:
                return error_answer(404, message="Not Found", documentation_url=f"{DOCS}/issues/issues")
            state = seen.query.get("state", "open")
            since = seen.query.get("since", "")
            rows = [i for i in self.issues[name] if state in ("all", i["state"]) and i["updated_at"] >= since]
        else:
            return error_answer(404, message="Not Found", documentation_url=DOCS)
        per_page, page = min(int(seen.query.get("per_page", 30)), 100), int(seen.query.get("page", 1))
        last = max(1, -(-len(rows) // per_page))
        headers = {}
        if page < last:
            query = {k: v for k, v in seen.query.items() if k != "page"}

            def link(n: int) -> str:
                return f"{self.url}{seen.path}?{urlencode({**query, 'page': n})}"

            headers["Link"] = f'<{link(page + 1)}>; rel="next", <{link(last)}>; rel="last"'
        return Answer(200, rows[(page - 1) * per_page : page * per_page], headers)
