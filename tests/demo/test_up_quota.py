"""``make demo`` switches on the demo API's announced quota for ``sponsored`` (issue 11): generous enough
never to block (above the config's limit in the same window), so the attempt lines show ``API N left``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import requests

from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.demo.up import DEMO_QUOTAS, set_demo_quotas
from airflow_sync_provider.sources_file import load_sources

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_the_launcher_announces_a_quota_that_never_blocks_sponsored() -> None:
    configs = load_sources(DAGS / "sources.yaml")
    (quota,) = DEMO_QUOTAS
    config = configs[quota["source"]]
    assert config.rate_limit.window == timedelta(seconds=quota["window"])
    assert quota["limit"] > config.rate_limit.max_requests  # never the tighter of the two
    assert config.rate_limit.learn_from_headers

    with DemoServer(port=0) as demo:
        assert set_demo_quotas(demo.url) == ["sponsored"]
        answer = requests.get(f"{demo.url}/sponsored", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["RateLimit-Remaining"] == str(quota["limit"] - 1)
        assert answer.headers["RateLimit-Policy"] == f"{quota['limit']};w={quota['window']}"
        assert "RateLimit-Remaining" not in requests.get(f"{demo.url}/airdrops", timeout=10).headers
