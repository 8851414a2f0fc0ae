"""12.6-12.8 without a scheduler: ``trigger_assets``/``review`` config, the schedule the factory builds,
the review DAG shape, and the pure parts of fetch -> review -> publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAny
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule, AssetTriggeredTimetable
from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.authoring.asset_schedule import describe_triggers, sync_schedule
from airflow_sync_provider.authoring.review import (
    APPROVE,
    MAX_FIELD_CHARS,
    MAX_SUBMISSIONS,
    REJECT,
    TIMEOUT_REASON,
    PublishSubmissionsOperator,
    SubmissionReviewOperator,
    collect_submissions,
    review_body,
    split_decision,
    trim_submission,
)
from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncConfigError
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.sources_file import configs_from_mapping

# -- config -------------------------------------------------------------------------------------------


def test_new_fields_default_to_off() -> None:
    config = SyncConfig(source="a")
    assert (config.trigger_assets, config.review, config.review_timeout) == ((), False, timedelta(days=1))


def test_yaml_list_becomes_a_tuple_and_round_trips() -> None:
    config = SyncConfig.from_dict(
        {"source": "g", "schedule": None, "trigger_assets": ["scans", "alerts"], "review": True}
        | {"review_timeout": "90m"}
    )
    assert config.trigger_assets == ("scans", "alerts")
    assert config.review_timeout == timedelta(minutes=90)
    data = config.to_dict()
    assert data["trigger_assets"] == ["scans", "alerts"]
    assert (data["review"], data["review_timeout"]) == (True, "90m")
    assert SyncConfig.from_dict(data) == config


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"trigger_assets": "guardian_scans"}, "trigger_assets", "must be a list of asset names"),
        ({"trigger_assets": [""]}, "trigger_assets", "non-empty names"),
        ({"trigger_assets": [" scans"]}, "trigger_assets", "without surrounding spaces"),
        ({"trigger_assets": [7]}, "trigger_assets", "got 7"),
        ({"trigger_assets": ["x" * 1501]}, "trigger_assets", "at most 1500"),
        ({"trigger_assets": ["a", "a"]}, "trigger_assets", "must not repeat a name"),
        ({"trigger_assets": ["a"], "schedule": "@once"}, "trigger_assets", "cannot be combined with"),
        ({"review": "yes"}, "review", "must be true or false"),
        ({"review_timeout": timedelta(0)}, "review_timeout", "positive timedelta"),
    ],
)
def test_bad_values_name_the_field(changes: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SyncConfigError) as info:
        SyncConfig(source="a", **changes)
    assert info.value.field == field
    assert message in str(info.value)


def test_sources_file_error_names_source_and_field() -> None:
    with pytest.raises(SyncConfigError) as info:
        configs_from_mapping({"sources": {"guardian": {"trigger_assets": "guardian_scans"}}}, "s.yaml")
    assert str(info.value) == (
        "s.yaml: source 'guardian': trigger_assets must be a list of asset names, got 'guardian_scans'"
    )


# -- schedule -----------------------------------------------------------------------------------------


def test_without_assets_the_schedule_is_unchanged() -> None:
    for schedule in ("*/5 * * * *", timedelta(minutes=3), None):
        assert sync_schedule(SyncConfig(source="a", schedule=schedule)) == schedule


def test_assets_only_schedule_on_the_asset() -> None:
    schedule = sync_schedule(SyncConfig(source="g", schedule=None, trigger_assets=("guardian_scans",)))
    assert schedule == Asset("guardian_scans")


def test_several_assets_combine_with_or() -> None:
    schedule = sync_schedule(SyncConfig(source="g", schedule=None, trigger_assets=("a", "b")))
    assert isinstance(schedule, AssetAny)
    assert list(schedule.objects) == [Asset("a"), Asset("b")]


def test_cron_plus_asset_is_asset_or_time() -> None:
    schedule = sync_schedule(SyncConfig(source="s", schedule="*/5 * * * *", trigger_assets=("sponsored",)))
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.asset_condition == Asset("sponsored")
    assert schedule.timetable == CronTriggerTimetable("*/5 * * * *", timezone="UTC")


def test_interval_plus_asset_is_asset_or_delta() -> None:
    schedule = sync_schedule(SyncConfig(source="s", schedule=timedelta(minutes=10), trigger_assets=("x",)))
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.timetable == DeltaTriggerTimetable(timedelta(minutes=10))


def test_given_asset_objects_replace_plain_names() -> None:
    mine = Asset("guardian_scans", extra={"team": "security"})
    config = SyncConfig(source="g", schedule=None, trigger_assets=("guardian_scans",))
    assert sync_schedule(config, {"guardian_scans": mine}) is mine


def test_doc_sentence() -> None:
    assert describe_triggers(SyncConfig(source="a")) == ""
    assert describe_triggers(SyncConfig(source="a", trigger_assets=("x",))) == (
        " Also runs on every event of asset `x` (POST /api/v2/assets/events)."
    )


def test_factory_builds_asset_timetables() -> None:
    dags = build_sync_dags(
        [
            SyncConfig(source="guardian", schedule=None, trigger_assets=("guardian_scans",)),
            SyncConfig(source="sponsored", schedule="*/5 * * * *", trigger_assets=("sponsored",)),
            SyncConfig(source="plain"),
        ]
    )
    guardian, sponsored = dags["sync_guardian"], dags["sync_sponsored"]
    assert type(guardian.timetable) is AssetTriggeredTimetable
    assert guardian.timetable.asset_condition == Asset("guardian_scans")
    assert type(sponsored.timetable) is AssetOrTimeSchedule
    assert type(dags["sync_plain"].timetable) is CronTriggerTimetable
    for dag in dags.values():
        assert dag.max_active_runs == 1
        assert dag.get_task("sync").pool == f"sync_{dag.dag_id.removeprefix('sync_')}"
    assert "Also runs on every event of asset `guardian_scans`" in (guardian.doc_md or "")


# -- review DAG shape ---------------------------------------------------------------------------------


class AdminNotifier(BaseNotifier):
    def notify(self, context: Any) -> None:  # pragma: no cover - only wired, not called, here
        pass


def test_review_source_gets_sync_review_publish() -> None:
    notifier = AdminNotifier()
    config = SyncConfig(source="community", review=True, review_timeout=timedelta(hours=2))
    dag = build_sync_dags([config], review_notifiers=notifier)["sync_community"]
    assert dag.task_ids == ["sync", "review", "publish"]
    sync, review, publish = (dag.get_task(t) for t in ("sync", "review", "publish"))
    assert sync.handler is collect_submissions  # type: ignore[attr-defined]
    assert sync.downstream_task_ids == {"review"}
    assert review.downstream_task_ids == {"publish"}
    assert isinstance(review, SubmissionReviewOperator)
    assert review.options == [APPROVE, REJECT]
    assert review.defaults == [REJECT]
    assert review.multiple is False
    assert review.response_timeout == timedelta(hours=2)
    assert list(review.notifiers) == [notifier]
    assert review.pool == "default_pool"  # waiting for a human holds no slot of sync_community
    assert list(review.params.keys()) == ["reject_ids"]
    assert isinstance(publish, PublishSubmissionsOperator)
    assert publish.outlets == [Asset("community_published")]
    assert set(dag.params.keys()) == {"dry_run", "max_requests", "max_retries", "max_pages"}
    assert "**Review**" in (dag.doc_md or "") and "no answer within\n2h" in (dag.doc_md or "")


def test_a_custom_handler_is_kept_for_a_review_source() -> None:
    def mine(ctx: Any) -> int:
        return 0

    dag = build_sync_dags([SyncConfig(source="c", review=True)], handler=mine)["sync_c"]
    assert dag.get_task("sync").handler is mine  # type: ignore[attr-defined]


def test_sources_without_review_keep_one_task() -> None:
    assert build_sync_dags([SyncConfig(source="a")])["sync_a"].task_ids == ["sync"]


# -- fetch --------------------------------------------------------------------------------------------


@dataclass
class FakeTI:
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@dataclass
class FakePage:
    items: list[Any]


@dataclass
class FakeCheckpoint:
    items: int = 0
    handler_data: dict[str, Any] = field(default_factory=dict)


class FakeContext:
    """What ``collect_submissions`` uses of a ``SyncContext``: pages, the checkpoint and the TI."""

    def __init__(self, pages: list[list[Any]], checkpoint: FakeCheckpoint | None = None) -> None:
        self._pages = pages
        self.checkpoint = checkpoint or FakeCheckpoint()
        self.ti = FakeTI()
        self.context = {"ti": self.ti}
        self.config = SyncConfig(source="community")

    def pages(self) -> Any:
        for items in self._pages:
            self.checkpoint.items += len(items)
            yield FakePage(items)


def submission(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"community-{n:04d}",
        "title": f"Title {n}",
        "url": f"https://example.com/{n}",
        "submitted_by": f"user_{n}",
        "status": "pending",
        **extra,
    }


def test_collect_keeps_the_four_fields_of_every_page_and_pushes_them() -> None:
    ctx = FakeContext([[submission(1), submission(2)], [submission(3)]])
    assert collect_submissions(ctx) == 3  # type: ignore[arg-type]
    assert ctx.ti.pushed["submissions"] == [
        {"id": f"community-000{n}", "title": f"Title {n}", "url": f"https://example.com/{n}"}
        | {"submitted_by": f"user_{n}"}
        for n in (1, 2, 3)
    ]
    assert ctx.ti.pushed["submissions_total"] == 3


def test_collect_is_bounded_and_deduplicated() -> None:
    items = [submission(n) for n in range(MAX_SUBMISSIONS + 20)]
    ctx = FakeContext([[submission(0)], items])
    assert collect_submissions(ctx) == MAX_SUBMISSIONS + 21  # type: ignore[arg-type]
    kept = ctx.ti.pushed["submissions"]
    assert [s["id"] for s in kept] == [f"community-{n:04d}" for n in range(MAX_SUBMISSIONS)]


def test_collect_resumes_with_what_it_kept_before_a_deferral() -> None:
    earlier = FakeCheckpoint(items=1, handler_data={"submissions": [trim_submission(submission(1))]})
    ctx = FakeContext([[submission(2)]], earlier)
    assert collect_submissions(ctx) == 2  # type: ignore[arg-type]
    assert [s["id"] for s in ctx.ti.pushed["submissions"]] == ["community-0001", "community-0002"]


def test_trim_cuts_long_text_and_refuses_items_without_id() -> None:
    trimmed = trim_submission(submission(1, title="x" * 1000, url=None, id=42))
    assert trimmed["id"] == "42"
    assert len(trimmed["title"] or "") == MAX_FIELD_CHARS and (trimmed["title"] or "").endswith("…")
    assert trimmed["url"] is None
    for bad in ({"title": "no id"}, "a string", {"id": ""}, {"id": "x" * (MAX_FIELD_CHARS + 1)}):
        with pytest.raises(SyncAbort) as info:
            trim_submission(bad)
        assert info.value.kind is SyncErrorKind.INVALID_RESPONSE


# -- review body --------------------------------------------------------------------------------------


def test_body_lists_every_submission_as_plain_text() -> None:
    evil = {
        "id": "c-1",
        "title": "[click](javascript:alert(1)) | {{ var.value.secret }}",
        "url": "https://e.x/a_b",
        "submitted_by": None,
    }
    body = review_body("community", [evil, trim_submission(submission(2))], total=5)
    lines = body.splitlines()
    assert lines[0] == "**2** new `community` submission(s) wait for review."
    assert lines[5:7] == ["| id | title | submitted by | url |", "|---|---|---|---|"]
    assert lines[7] == (
        r"| c-1 | \[click\]\(javascript:alert\(1\)\) \| \{\{ var.value.secret \}\} | – | https://e.x/a\_b |"
    )
    assert lines[8] == r"| community-0002 | Title 2 | user\_2 | https://example.com/2 |"
    assert lines[-1] == "3 more were fetched; they are not part of this review."


# -- publish decision ---------------------------------------------------------------------------------

SUBS = [trim_submission(submission(n)) for n in (1, 2, 3)]
ADMIN = {"id": "admin", "name": "admin"}


def test_approve_publishes_all() -> None:
    published, rejected = split_decision(
        SUBS, {"chosen_options": [APPROVE], "params_input": {}, "responded_by_user": ADMIN}
    )
    assert published == [{**s, "approved_by": "admin"} for s in SUBS]
    assert rejected == []


def test_approve_with_reject_ids_rejects_those() -> None:
    decision = {
        "chosen_options": [APPROVE],
        "params_input": {"reject_ids": ["community-0002"]},
        "responded_by_user": ADMIN,
    }
    published, rejected = split_decision(SUBS, decision)
    assert [s["id"] for s in published] == ["community-0001", "community-0003"]
    assert rejected == [{**SUBS[1], "reason": "rejected by admin (reject_ids)"}]


def test_reject_ids_typed_as_text_are_split() -> None:
    decision = {
        "chosen_options": [APPROVE],
        "params_input": {"reject_ids": "community-0001, community-0003\n"},
        "responded_by_user": ADMIN,
    }
    published, _ = split_decision(SUBS, decision)
    assert [s["id"] for s in published] == ["community-0002"]


def test_reject_publishes_nothing() -> None:
    decision = {"chosen_options": [REJECT], "params_input": {"reject_ids": []}, "responded_by_user": ADMIN}
    published, rejected = split_decision(SUBS, decision)
    assert published == []
    assert rejected == [{**s, "reason": "rejected by admin"} for s in SUBS]


def test_timeout_default_rejects_with_its_own_reason() -> None:
    decision = {"chosen_options": [REJECT], "params_input": {}, "responded_by_user": None, "timedout": True}
    published, rejected = split_decision(SUBS, decision)
    assert published == []
    assert {r["reason"] for r in rejected} == {TIMEOUT_REASON}


def test_no_decision_publishes_nothing() -> None:
    published, rejected = split_decision(SUBS, None)
    assert published == []
    assert {r["reason"] for r in rejected} == {"no review decision was recorded"}
