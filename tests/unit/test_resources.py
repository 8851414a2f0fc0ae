"""Several resources per source: the config form, its checks at parse time, per-resource state, the
DAG's tasks and the dashboard's JSON (pure, no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_sync_provider.admin import operations
from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncConfigError
from airflow_sync_provider.run.parent_child import child_request
from airflow_sync_provider.state import resources as resource_state
from airflow_sync_provider.state.store import SourceState, merge

HUBSPOT: dict[str, Any] = {
    "source": "hubspot",
    "endpoint": "/crm/v3/objects/contacts",
    "params": {"limit": 100},
    "paginator": {"type": "cursor", "cursor_path": "paging.next.after", "cursor_param": "after"},
    "data_selector": "results",
    "load": {"destination": "duckdb", "dataset": "crm", "primary_key": "id", "write_disposition": "merge"},
    "resources": [
        {"name": "contacts", "path": "/crm/v3/objects/contacts"},
        {"name": "companies", "path": "/crm/v3/objects/companies", "load": {"table": "firms"}},
        {
            "name": "deals",
            "path": "/crm/v3/objects/deals",
            "params": {"limit": 50},
            "incremental": {"cursor_field": "updatedAt", "param": "since"},
        },
    ],
}


def parse(resources: Any, **more: Any) -> SyncConfig:
    return SyncConfig.from_dict({"source": "api", **more, "resources": resources})


def test_each_resource_syncs_with_the_source_config_and_its_own_fields() -> None:
    config = SyncConfig.from_dict(HUBSPOT)
    assert config.resource_names == ("contacts", "companies", "deals")
    contacts, companies, deals = (config.for_resource(n) for n in config.resource_names)
    for one in (contacts, companies, deals):  # one source: one window, breaker, pool and Variable
        assert (one.source, one.pool, one.variable_key) == ("hubspot", "sync_hubspot", "sync_state_hubspot")
        assert one.rate_limit == config.rate_limit and one.resources == ()
        assert one.paginator == config.paginator and one.data_selector == "results"
    assert (contacts.load.table, companies.load.table, deals.load.table) == ("contacts", "firms", "deals")
    assert companies.load.dataset == "crm" and companies.load.primary_key == ("id",)
    assert contacts.params == {"limit": 100} and deals.params == {"limit": 50}
    assert contacts.incremental is None and deals.incremental.param == "since"
    assert SyncConfig.from_dict(config.to_dict()) == config


def test_the_mapping_form_names_resources_by_their_keys() -> None:
    config = parse(
        {"repos": {"path": "/user/repos"}, "issues": {"path": "/repos/{resources.repos.name}/issues"}}
    )
    assert config.resource_names == ("repos", "issues")
    assert config.resource("issues").parent == "repos"


def test_a_resource_loads_only_where_its_source_or_itself_says_so() -> None:
    config = parse([{"name": "a", "path": "/a"}, {"name": "b", "path": "/b", "load": {"dataset": "raw"}}])
    assert config.for_resource("a").load is None
    assert (config.for_resource("b").load.dataset, config.for_resource("b").load.table) == ("raw", "b")


def test_a_source_without_resources_is_unchanged() -> None:
    config = SyncConfig(source="plain")
    assert config.resources == () and config.resource_names == ()
    assert config.to_dict()["resources"] == []


@pytest.mark.parametrize(
    ("resources", "more", "field", "words"),
    [
        ([{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}], {}, "resources[1].name", "another"),
        ([{"name": "my-items", "path": "/a"}], {}, "resources[0].name", "task id"),
        ([{"name": "a.b", "path": "/a"}], {}, "resources[0].name", "task id"),
        ([{"name": "a", "path": "/a", "table": "x"}], {}, "resources[0].table", "not a known resource field"),
        ([{"name": "a"}], {}, "resources[0].path", "is required"),
        ([{"name": "a", "path": "https://x/a"}], {}, "resources[0].path", "starting with '/'"),
        ([{"name": "a", "path": "/a", "paginator": "pages"}], {}, "resources[0].paginator.type", "one of"),
        (
            [{"name": "a", "path": "/a", "load": {"write_disposition": "merge"}}],
            {},
            "resources[0].load.primary_key",
            "required",
        ),
        (
            [{"name": "a", "path": "/a", "incremental": {"param": "since"}}],
            {},
            "resources[0].incremental.cursor_field",
            "required",
        ),
        ({"a": {"path": "/a", "methd": "GET"}}, {}, "resources.a.methd", "not a known resource field"),
        ([{"name": "a", "path": "/x/{resources.zz.id}"}], {}, "resources[0].path", "names no other resource"),
        ([{"name": "a", "path": "/x/{resources.a.id}"}], {}, "resources[0].path", "names no other resource"),
        (
            [
                {"name": "a", "path": "/a"},
                {"name": "b", "path": "/a/{resources.a.id}"},
                {"name": "c", "path": "/b/{resources.b.id}"},
            ],
            {},
            "resources[2].path",
            "one level",
        ),
        ([{"name": "a", "path": "/a/{id}"}], {}, "resources[0].path", "no resolve param fills"),
        (
            [{"name": "a", "path": "/a", "include_from_parent": ["id"]}],
            {},
            "resources[0].include_from_parent",
            "needs a parent",
        ),
        (
            [
                {"name": "a", "path": "/a"},
                {"name": "b", "path": "/b/{resources.a.id}", "on_missing_parent": "ignore"},
            ],
            {},
            "resources[1].on_missing_parent",
            "skip, fail",
        ),
        (
            [
                {"name": "a", "path": "/a"},
                {"name": "b", "path": "/b/{i}", "params": {"i": {"type": "resolve", "resource": "a"}}},
            ],
            {},
            "resources[1].params.i.field",
            "field path",
        ),
        ([{"name": "a", "path": "/a"}], {"review": True}, "review", "cannot be combined"),
        ("a", {}, "resources", "must be a list"),
    ],
)
def test_bad_resources_are_refused_at_parse_time_naming_the_field(
    resources: Any, more: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SyncConfigError) as caught:
        parse(resources, **more)
    assert caught.value.field == field and words in str(caught.value), str(caught.value)


def test_child_values_come_from_the_path_or_resolve_params_in_dlt_vocabulary() -> None:
    config = parse(
        [
            {"name": "orders", "path": "/orders"},
            {"name": "lines", "path": "/orders/{resources.orders.id}/lines"},
            {
                "name": "notes",
                "path": "/orders/{order_id}/notes",
                "params": {
                    "order_id": {"type": "resolve", "resource": "orders", "field": "id"},
                    "customer": {"type": "resolve", "resource": "orders", "field": "customer.id"},
                    "limit": 10,
                },
            },
        ]
    )
    order = {"id": "a b/7", "customer": {"id": 42}}
    assert child_request(config.resource("lines"), order) == ("/orders/a%20b/7/lines", {})
    assert child_request(config.resource("notes"), order) == ("/orders/a%20b/7/notes", {"customer": 42})
    assert config.for_resource("notes").params == {"limit": 10}
    with pytest.raises(SyncAbort, match="no usable 'id'"):
        child_request(config.resource("lines"), {"name": "x"})
    assert SyncConfig.from_dict(config.to_dict()) == config


def test_each_resource_keeps_its_own_bookmark_and_last_result_in_the_source_state() -> None:
    state = SourceState("hubspot", bookmark="old-top-level")
    state = resource_state.with_bookmark(state, "deals", "2026-01-02")
    state = resource_state.with_result(state, "deals", {"success": True, "resource": "deals"})
    state = resource_state.with_bookmark(state, "contacts", 17)
    back = SourceState.from_json(state.to_json(), "hubspot")
    assert back == state
    assert resource_state.bookmark(back, "deals") == "2026-01-02"
    assert resource_state.bookmark(back, "contacts") == 17
    assert resource_state.bookmark(back, "companies") is None
    assert resource_state.bookmark(back, None) == "old-top-level"  # a source without resources: as today
    old = json.dumps({"schema_version": 1, "source": "hubspot", "bookmark": 5})
    assert SourceState.from_json(old, "hubspot").resources == {}


def test_a_malformed_resource_entry_is_dropped_with_a_warning() -> None:
    raw = {"schema_version": 1, "source": "s", "resources": {"a": {"bookmark": [1]}, "b": {"bookmark": 3}}}
    warnings: list[str] = []
    state = SourceState.from_json(json.dumps(raw), "s", on_warning=warnings.append)
    assert state.resources == {"b": {"bookmark": 3}}
    assert any("resources.a" in w for w in warnings)


def test_a_merge_keeps_the_other_writers_resources() -> None:
    ours = SourceState("s", resources={"a": {"bookmark": 2}})
    theirs = SourceState("s", resources={"a": {"bookmark": 1}, "b": {"bookmark": 9}})
    assert merge(ours, theirs).resources == {"a": {"bookmark": 2}, "b": {"bookmark": 9}}


def test_the_dag_has_one_task_per_resource_in_the_source_pool_parents_first() -> None:
    from airflow_sync_provider.authoring.dag_factory import build_sync_dags

    config = parse(
        [
            {"name": "repos", "path": "/user/repos"},
            {"name": "issues", "path": "/repos/{resources.repos.full_name}/issues"},
            {"name": "gists", "path": "/gists"},
        ]
    )
    dags = build_sync_dags([config, SyncConfig(source="plain")])
    tasks = {t.task_id: t for t in dags["sync_api"].tasks}
    assert sorted(tasks) == ["gists", "issues", "repos"]
    assert {t.pool for t in tasks.values()} == {"sync_api"}
    assert {t.resource for t in tasks.values()} == {"repos", "issues", "gists"}
    assert tasks["issues"].upstream_task_ids == {"repos"} and tasks["gists"].upstream_task_ids == set()
    assert [t.task_id for t in dags["sync_plain"].tasks] == ["sync"]


def test_an_operator_refuses_a_resource_its_source_does_not_have() -> None:
    from airflow_sync_provider.operators.sync import RateLimitedSyncOperator

    config = parse([{"name": "repos", "path": "/user/repos"}])
    with pytest.raises(SyncConfigError, match="resource must be a resource of 'api' \\(known: repos\\)"):
        RateLimitedSyncOperator(source="api", config=config, resource="issues")


def test_the_dashboard_json_has_each_resource_once_under_the_source() -> None:
    config = parse([{"name": "a", "path": "/a"}, {"name": "b", "path": "/b"}])
    state = resource_state.with_result(SourceState("api"), "a", {"success": True, "items_processed": 3})
    state = resource_state.with_bookmark(state, "a", "x")
    described = operations.describe(state, config, now=0.0)
    assert described["resources"] == [
        {"name": "a", "last_result": {"success": True, "items_processed": 3}, "bookmark": "x"},
        {"name": "b", "last_result": None, "bookmark": None},
    ]
    assert "resources" not in operations.describe(SourceState("plain"), SyncConfig(source="plain"), now=0.0)


def test_the_readme_resources_example_is_a_valid_source() -> None:
    """The ``sources.yaml`` block of README "Several resources per source" parses as written."""
    import re
    from pathlib import Path

    import yaml

    from airflow_sync_provider.sources_file import configs_from_mapping

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Several resources per source", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    config = configs_from_mapping(yaml.safe_load(block))["github"]
    assert config.resource_names == ("repos", "issues")
    issues = config.for_resource("issues")
    assert (issues.load.table, issues.incremental.param) == ("issues", "since")
    assert config.resource("issues").parent == "repos"
