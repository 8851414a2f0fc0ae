"""The DAG of one docs/recipes.md recipe (tests/load/test_recipes_airflow.py): the recipe's YAML comes in
``$SYNC_TEST_RECIPE_YAML`` exactly as the document has it; without it the file defines no DAG."""

import os

import yaml

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.sources_file import configs_from_mapping

_TEXT = os.environ.get("SYNC_TEST_RECIPE_YAML")
if _TEXT:
    globals().update(
        build_sync_dags(configs_from_mapping({"include_defaults": False, **yaml.safe_load(_TEXT)}))
    )
