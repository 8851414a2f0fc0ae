"""One API, two ways (tests/operator/test_resources_airflow.py), both built by ``build_sync_dags`` from YAML:

- ``sync_shared_api``: one source with three resources (the demo's ``/airdrops``, ``/quests``, ``/yield``)
  under one limit of 3 requests per 10 s: one window, one pool, one task per resource;
- ``three_sources_one_api``: the same endpoints as three sources with the same limit each (three
  windows for one API), as three tasks of one DAG run back to back like the resources' tasks.
"""

import yaml
from airflow.sdk import DAG

from airflow_sync_provider import RateLimitedSyncOperator, build_sync_dags
from airflow_sync_provider.authoring.dag_factory import START_DATE
from airflow_sync_provider.sources_file import configs_from_mapping

LIMIT = {"max_requests": 3, "window": "10s", "safety_margin": "500ms"}
SOURCES = yaml.safe_load("""
include_defaults: false
sources:
  shared_api:
    schedule: null
    max_wait: 1m
    resources:
      - {name: airdrops, path: /airdrops}
      - {name: quests, path: /quests}
      - {name: yield_, path: /yield}
  api_airdrops: {endpoint: /airdrops, schedule: null}
  api_quests: {endpoint: /quests, schedule: null}
  api_yield: {endpoint: /yield, schedule: null}
""")
for settings in SOURCES["sources"].values():
    settings["rate_limit"] = LIMIT

CONFIGS = configs_from_mapping(SOURCES)
globals().update(build_sync_dags([CONFIGS["shared_api"]]))

with DAG("three_sources_one_api", schedule=None, start_date=START_DATE, catchup=False) as three_sources:
    for name in ("api_airdrops", "api_quests", "api_yield"):
        RateLimitedSyncOperator(task_id=name, source=name, config=CONFIGS[name])
