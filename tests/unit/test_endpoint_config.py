"""Parse-time checks of the endpoint description: every bad value named with its field and value."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_sync_provider.config import templates
from airflow_sync_provider.config.endpoint import EndpointConfig, parse_endpoint
from airflow_sync_provider.exceptions import SyncConfigError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"paginator": {"type": "pages"}},
            "r.paginator.type must be one of single_page, header_link, json_link, "
            "cursor, offset, page_number, last_item_cursor, got 'pages'",
        ),
        ({"paginator": {"limit": 5}}, "r.paginator.type is required"),
        ({"paginator": "offset"}, "r.paginator.limit is required for type offset, got None"),
        ({"paginator": {"type": "offset", "limit": 0}}, "r.paginator.limit must be an integer >= 1, got 0"),
        (
            {"paginator": {"type": "cursor", "next_url_path": "n"}},
            "r.paginator.next_url_path is not a field of type cursor (its fields: cursor_path, cursor_param",
        ),
        (
            {"paginator": {"type": "json_link", "next_url_path": "links..next"}},
            "r.paginator.next_url_path must be a dotted JSON path like data.next, got 'links..next'",
        ),
        (
            {"paginator": {"type": "cursor", "cursor_param": "c", "cursor_body_path": "c"}, "method": "POST"},
            "r.paginator.cursor_body_path cannot be combined with cursor_param",
        ),
        (
            {"paginator": {"type": "cursor", "cursor_body_path": "c"}},
            "r.paginator.cursor_body_path needs method: POST (a JSON body), got 'c'",
        ),
        (
            {"paginator": {"type": "offset", "limit": 5, "total_path": None, "stop_after_empty_page": False}},
            "r.paginator.stop_after_empty_page must be true when total_path",
        ),
        (
            {"paginator": {"type": "page_number", "base_page": 1, "page": 0}},
            "r.paginator.page must be >= base_page",
        ),
        ({"method": "PATCH"}, "r.method must be one of GET, POST, got 'PATCH'"),
        ({"path": "https://api.example.com/v1"}, "r.path must be a path starting with '/' (not a URL)"),
        ({"json": {"a": 1}}, "r.json needs method: POST"),
        ({"json": [1], "method": "POST"}, "r.json must be a JSON object, got [1]"),
        (
            {"params": {"since": {"a": 1}}},
            "r.params.since must be a string, number, boolean or a list of them",
        ),
        (
            {"params": {"since": "{bookmrak}"}},
            "r.params.since names unknown run value {bookmrak} (known: {data_interval_start}",
        ),
        ({"params": {"q": "a}b"}}, "r.params.q has an unpaired brace"),
        (
            {"json": {"filter": {"after": "{nope}"}}, "method": "POST"},
            "r.json.filter.after names unknown run value",
        ),
        (
            {"data_selector": "data[0]"},
            "r.data_selector must be a dotted JSON path like data or response.items",
        ),
        ({"pagniator": "single_page"}, "r.pagniator is not a known field (known: path, method, params"),
    ],
)
def test_bad_input_names_field_and_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SyncConfigError) as caught:
        parse_endpoint(data, "r.")
    assert str(caught.value).startswith(message)


def test_a_full_description_parses() -> None:
    spec = parse_endpoint(
        {
            "path": "/v1/databases/x/query",
            "method": "post",
            "json": {"page_size": 100, "filter": {"after": "{data_interval_start}"}},
            "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_body_path": "start_cursor"},
            "data_selector": "results",
        }
    )
    assert spec.method == "POST" and spec.paginator is not None
    assert spec.paginator.cursor_param is None and spec.paginator.has_more_path is None
    assert EndpointConfig().paginator is None and EndpointConfig().method == "GET"


def test_templates_keep_types_and_leave_out_what_the_run_lacks() -> None:
    values = {"bookmark": 1700, "data_interval_start": "2027-01-15T08:00:00+00:00"}
    params = {
        "since": "{bookmark}",
        "q": "updated>{data_interval_start}",
        "end": "{data_interval_end}",
        "n": 5,
    }
    assert templates.render(params, values) == {
        "since": 1700,
        "q": "updated>2027-01-15T08:00:00+00:00",
        "n": 5,
    }
    assert templates.render({"raw": "{{literal}}"}, {}) == {"raw": "{literal}"}


def test_sync_config_reads_the_endpoint_fields_and_round_trips() -> None:
    from airflow_sync_provider.config import SyncConfig

    data = {
        "source": "stripe_customers",
        "endpoint": "/v1/customers",
        "params": {"limit": 100, "created[gte]": "{data_interval_start_unix}"},
        "paginator": {"type": "last_item_cursor"},
        "data_selector": "data",
    }
    config = SyncConfig.from_dict(data)
    assert config.request_spec.paginator == config.paginator
    assert config.paginator is not None and config.paginator.cursor_param == "starting_after"
    assert SyncConfig.from_dict(config.to_dict()) == config
    hash(config)  # still usable as a key
    plain = SyncConfig(source="plain")
    assert (plain.method, plain.params, plain.json, plain.paginator, plain.data_selector) == (
        "GET",
        {},
        None,
        None,
        None,
    )
    with pytest.raises(SyncConfigError, match=r"^paginator\.type must be one of single_page, header_link"):
        SyncConfig.from_dict({**data, "paginator": "link"})
    with pytest.raises(SyncConfigError, match=r"^params\.since names unknown run value \{since\}"):
        SyncConfig(source="x", params={"since": "{since}"})


def test_reading_an_endpoint_description_loads_no_dlt() -> None:
    """DAG parsing reads these configs: the pure paginators must not pull dlt in."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow_sync_provider.config import SyncConfig\n"
        "from airflow_sync_provider.run import pagination\n"
        "c = SyncConfig.from_dict({'source': 'x', 'paginator': {'type': 'offset', 'limit': 5}})\n"
        "p = c.paginator\n"
        "pagination.advance(p, pagination.start(p), pagination.PageView({'total': 9}, [1]))\n"
        "print(sorted(m for m in sys.modules if m == 'dlt' or m.startswith('dlt.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_examples_are_valid_sources() -> None:
    """The ``sources.yaml`` block of README "Describing your API" parses as it is written."""
    import re
    from pathlib import Path

    import yaml

    from airflow_sync_provider.sources_file import configs_from_mapping

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Describing your API", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)[0]  # the resources example: test_resources
    names = ("jira_issues", "notion_tasks", "stripe_customers", "zendesk_tickets")
    configs = {name: configs_from_mapping(yaml.safe_load(block))[name] for name in names}
    assert {c.paginator.type for c in configs.values() if c.paginator} == {
        "last_item_cursor",
        "json_link",
        "cursor",
        "offset",
    }
