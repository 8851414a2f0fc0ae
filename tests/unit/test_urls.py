"""``urls.wire_url``: the one encoding of a request's URL that redirect checks, page loops and
configured paginators compare and keep."""

from __future__ import annotations

import requests

from airflow_sync_provider.run import endpoint_pages, handlers, sync_run
from airflow_sync_provider.run.urls import wire_url


def test_params_are_added_as_requests_sends_them() -> None:
    url = "http://api.test/items?sort=asc"
    params = {"since": "2026-12-05T01:00:00+00:00", "tag": ["a b", "c"], "empty": ""}
    sent = requests.Request("GET", url, params=params).prepare().url
    assert wire_url(url, params) == sent
    assert (
        sent == "http://api.test/items?sort=asc&since=2026-12-05T01%3A00%3A00%2B00%3A00&tag=a+b&tag=c&empty="
    )


def test_no_params_leave_the_url_untouched() -> None:
    assert wire_url("http://api.test/a b?x=1", None) == "http://api.test/a b?x=1"
    assert wire_url("http://api.test/a b?x=1", {}) == "http://api.test/a b?x=1"


def test_the_sync_loop_the_handlers_and_the_paginators_share_it() -> None:
    assert sync_run.wire_url is handlers.wire_url is endpoint_pages.wire_url is wire_url
