"""The two recipes of docs/recipes.md with ``resources:``, as written there, against emulations of their
APIs built from the public docs (tests.apis.hubspot, tests.apis.github).

HubSpot: contacts, companies and deals as three resources of one source, synced as their three tasks
run (back to back, one state store, one clock); a 429 in the middle of the companies defers that task
and the resumed task sends exactly the throttled request again. With HubSpot's 100 requests per
10 s enforced at the emulation, the three together never exceed it (counted from its log), where the
same endpoints as three sources are refused. GitHub: the organization's repositories (parent) and the
issues of each (child); a secondary-limit 403 with ``Retry-After`` in the middle of the child loop
defers the task, which resumes at the repository it was on; a repository answering 404 is skipped
with a warning. Every table is compared row by row with the API's collection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from airflow_sync_provider.policy import shares
from airflow_sync_provider.sources_file import configs_from_mapping
from tests.apis.github import GitHub
from tests.apis.hubspot import HubSpot
from tests.hook import stored
from tests.load.recipe_runner import Runner, assert_resumed_at_the_throttled_request
from tests.load.recipes import RECIPES, recipe

pytest.importorskip("duckdb")
pytest.importorskip("dlt")

OBJECTS = {"contacts": "email", "companies": "name", "deals": "dealname"}


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    yield


def hubspot_rows(api: HubSpot, kind: str) -> list[tuple[str, str]]:
    prop = OBJECTS[kind]
    return sorted((o["id"], o["properties"][prop]) for o in api.objects[kind])


def test_hubspot_recipe_lands_three_objects_under_one_window_across_a_deferral(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = recipe("HubSpot")
    assert rec.config.resource_names == ("contacts", "companies", "deals")
    with HubSpot({"contacts": 250, "companies": 120, "deals": 80}) as api:
        runner = Runner(monkeypatch, rec, api, password=api.token)
        api.throttle_at(5)  # the companies' second page
        runs = {name: runner.sync(name) for name in OBJECTS}

    assert {n: (r.outcome.error, r.deferrals) for n, r in runs.items()} == {
        "contacts": (None, []),
        "companies": (None, [30.0]),
        "deals": (None, []),
    }
    assert_resumed_at_the_throttled_request(api, 5)
    after = [(s.path.rsplit("/", 1)[1], s.query.get("after")) for s in api.log]
    assert after == [
        ("contacts", None),
        ("contacts", "MTAw"),  # base64 "100": paging.next.after of the page before
        ("contacts", "MjAw"),
        ("companies", None),
        ("companies", "MTAw"),  # 429: deferred
        ("companies", "MTAw"),  # resumed at that page, not at page 1
        ("deals", None),
    ]
    assert {s.query["properties"] for s in api.requests("/crm/v3/objects/deals")} == {
        "dealname,amount,dealstage"
    }
    for kind, prop in OBJECTS.items():
        assert runner.rows(f"id, properties__{prop}", kind) == hubspot_rows(api, kind), kind
        assert runs[kind].outcome.result.items_processed == len(api.objects[kind])
    # one quota for the three tasks: every request of each (the 429 too) took a slot of the day window
    state = stored(runner.store, "hubspot")
    assert len(shares.total(state.extra(86400.0))) == len(api.log) == 7
    assert set(state.resources) == set(OBJECTS)
    quota = runs["deals"].outcome.guard.state.quota  # read from X-HubSpot-RateLimit-Remaining
    assert quota is not None and quota.remaining == 99


def three_sources(rec_yaml: str, *, learn_remaining: bool) -> dict[str, object]:
    """The recipe's three resources as three sources with the recipe's limits each, nothing loaded;
    without ``remaining_header`` unless ``learn_remaining``."""
    source = yaml.safe_load(rec_yaml)["sources"]["hubspot"]
    resources = source.pop("resources")
    source["load"] = None
    if not learn_remaining:
        source["rate_limit"][0].pop("remaining_header")
    sources = {
        f"hubspot_{r['name']}": {**source, "endpoint": r["path"], "params": r["params"]} for r in resources
    }
    return dict(configs_from_mapping({"include_defaults": False, "sources": sources}, RECIPES))


def refused_as_three_sources(monkeypatch: pytest.MonkeyPatch, counts: dict[str, int], *, learn: bool) -> int:
    """How many requests HubSpot refuses when the recipe's three resources run as three sources."""
    rec = recipe("HubSpot")
    with HubSpot(counts) as api:
        runner = Runner(monkeypatch, rec, api, password=api.token)
        api.enforce(100, 10.0, runner.clock)
        for config in three_sources(rec.yaml_text, learn_remaining=learn).values():
            runner.rec = dataclasses.replace(rec, config=config)  # type: ignore[arg-type]
            runner.sync()
    return api.refused


def test_hubspot_recipes_three_resources_keep_within_the_accounts_limit_where_three_sources_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HubSpot's 100 requests per 10 s, enforced at the emulation on the sync's clock: 105 pages of the
    three objects as the recipe's three resources are never refused and fill the window exactly;
    the same three endpoints as three sources (three windows) are refused, unless each reads
    HubSpot's remaining count."""
    rec = recipe("HubSpot")
    counts = {"contacts": 4000, "companies": 3500, "deals": 3000}
    with HubSpot(counts) as api:
        runner = Runner(monkeypatch, rec, api, password=api.token)
        api.enforce(100, 10.0, runner.clock)
        runs = [runner.sync(name) for name in OBJECTS]

    assert all(r.outcome.error is None for r in runs)
    assert len(api.log) == 40 + 35 + 30 and api.refused == 0
    busiest = max(sum(1 for t in api.admitted if s <= t < s + 10.0) for s in api.admitted)
    assert busiest == 100  # as fast as the account's limit allows, never faster
    for kind in OBJECTS:
        assert len(runner.rows("id", kind)) == counts[kind]

    # three sources: three windows of 100 for one account's 100; only HubSpot's own count in
    # X-HubSpot-RateLimit-Remaining, which the recipe's remaining_header reads, still paces them
    assert refused_as_three_sources(monkeypatch, counts, learn=False) > 0
    assert refused_as_three_sources(monkeypatch, counts, learn=True) == 0


REPOS = {"octo-org/alpha": 150, "octo-org/beta": 0, "octo-org/gone": 2, "octo-org/gamma": 250}


def test_github_recipe_lands_issues_per_repo_resuming_at_the_repo_it_was_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = recipe("GitHub")
    with GitHub(REPOS, org="octo-org", closed_every=4) as api:
        api.issues.pop("octo-org/gone")  # listed, but its issues answer 404 (deleted since)
        runner = Runner(monkeypatch, rec, api, password=api.token)
        api.throttle_at(8, retry_after=60, status=403)  # a secondary limit in gamma's second page
        repos = runner.sync("repos")
        issues = runner.sync("issues")
        first = len(api.log)

        bookmark = max(i["updated_at"] for issues_of in api.issues.values() for i in issues_of)
        api.touch("octo-org/alpha", 7, "2027-04-01T00:00:00Z")
        again = runner.sync("issues")

    assert (repos.outcome.error, repos.deferrals) == (None, [])
    assert (issues.outcome.error, issues.deferrals) == (None, [60.0])
    requested = [f"{s.path}?page={s.query.get('page', '1')}" for s in api.log[:first]]
    assert requested == [
        "/orgs/octo-org/repos?page=1",  # the repos task
        "/orgs/octo-org/repos?page=1",  # the issues task reads its parent's pages
        "/repos/octo-org/alpha/issues?page=1",
        "/repos/octo-org/alpha/issues?page=2",
        "/repos/octo-org/beta/issues?page=1",
        "/repos/octo-org/gone/issues?page=1",  # 404: skipped
        "/repos/octo-org/gamma/issues?page=1",
        "/repos/octo-org/gamma/issues?page=2",  # 403 secondary limit, Retry-After 60: deferred
        "/orgs/octo-org/repos?page=1",  # the parent page in hand, read again
        "/repos/octo-org/gamma/issues?page=2",  # gamma resumes at its page 2; alpha, beta, gone not again
        "/repos/octo-org/gamma/issues?page=3",
    ]
    assert "octo-org/gone/issues answered 404; parent item skipped" in capsys.readouterr().out
    assert all(s.headers["X-GitHub-Api-Version"] == "2022-11-28" for s in api.log)
    assert {s.query["state"] for s in api.requests("/repos/")} == {"all"}
    quota = issues.outcome.guard.state.quota  # X-RateLimit-Limit
    assert quota is not None and quota.limit == 5000
    # every request of both tasks (the 403 too) took a slot of the source's hour window
    assert len(shares.total(stored(runner.store, "github").extra(3600.0))) == len(api.log)

    assert runner.rows("id, full_name", "repos") == [(r["id"], r["full_name"]) for r in api.repos]
    ids = {r["full_name"]: r["id"] for r in api.repos}
    assert runner.rows("id, number, state, title, _repos_id", "issues") == sorted(
        (i["id"], i["number"], i["state"], i["title"], ids[name])
        for name, issues_of in api.issues.items()
        for i in issues_of
    )
    assert issues.outcome.result.items_processed == 150 + 250

    # the next run sends the bookmark as since to every repository: the newest issue and the one edited
    assert again.outcome.error is None and again.outcome.result.items_processed == 2
    assert {s.query.get("since") for s in api.log[first + 1 :]} == {bookmark}
