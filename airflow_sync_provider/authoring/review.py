"""Admin review of fetched submissions (requirement 12.7): fetch -> review by a human -> publish.

::

    sync     RateLimitedSyncOperator with ``collect_submissions``: every page through the limiter and
             breaker; XCom ``submissions`` = [{id, title, url, submitted_by}] (at most MAX_SUBMISSIONS)
    review   SubmissionReviewOperator (Human-in-the-loop): Approve / Reject, plus optional ids to reject
             while approving the rest. Waits in ``awaiting_input`` (no worker slot) until answered in
             the UI (Required Actions) or by ``PATCH .../taskInstances/review/-1/hitlDetails``;
             no answer within ``review_timeout`` counts as Reject. Skipped when nothing was fetched.
    publish  PublishSubmissionsOperator: XCom ``published`` (approved) and ``rejected`` (with the
             reason), each rejection logged; an event on Asset ``<source>_published`` only when
             something was published (the task is skipped when nothing was).

A custom handler for a reviewed source must push XCom ``submissions`` in the same shape.
Nothing here runs at parse time but operator construction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, BaseOperator, Param
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowSkipException

from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.handlers import SyncContext

SUBMISSION_FIELDS = ("id", "title", "url", "submitted_by")
MAX_SUBMISSIONS = 50
"""One review shows at most this many submissions; the rest are not part of it (never published)."""
MAX_FIELD_CHARS = 300
SUBMISSIONS_KEY = "submissions"
TOTAL_KEY = "submissions_total"
PUBLISHED_KEY = "published"
REJECTED_KEY = "rejected"
REVIEW_TASK_ID = "review"
PUBLISH_TASK_ID = "publish"
APPROVE = "Approve"
REJECT = "Reject"
REJECT_IDS = "reject_ids"
TIMEOUT_REASON = "no answer within the review timeout"

Notifiers = BaseNotifier | Sequence[BaseNotifier] | None


def published_asset(source: str) -> Asset:
    """The asset that gets an event whenever approved submissions of ``source`` are published."""
    return Asset(f"{source}_published")


# -- fetch ------------------------------------------------------------------------------------------


def collect_submissions(ctx: SyncContext) -> int:
    """Sync handler: read every page, keep the first MAX_SUBMISSIONS submissions, push them to XCom.

    Kept submissions live in the checkpoint, so a sync that defers mid-way resumes with them. With
    ``load`` configured each page is landed (``ctx.load``) before the next one is fetched.
    """
    data = ctx.checkpoint.handler_data
    kept: list[dict[str, str | None]] = data.setdefault(SUBMISSIONS_KEY, [])
    seen = {s["id"] for s in kept}
    for page in ctx.pages():
        if ctx.config.load is not None:
            ctx.load(page.items)
        for item in page.items:
            submission = trim_submission(item)
            if len(kept) < MAX_SUBMISSIONS and submission["id"] not in seen:
                kept.append(submission)
                seen.add(submission["id"])
    total = ctx.checkpoint.items
    ti = ctx.context["ti"]
    ti.xcom_push(key=SUBMISSIONS_KEY, value=kept)
    ti.xcom_push(key=TOTAL_KEY, value=total)
    return total


def trim_submission(item: Any) -> dict[str, str | None]:
    """The reviewed fields of one item, each cut to MAX_FIELD_CHARS; an item without id is invalid."""
    if not isinstance(item, Mapping) or item.get("id") in (None, ""):
        raise SyncAbort(
            SyncErrorKind.INVALID_RESPONSE,
            f"a submission must be an object with an 'id', got {str(item)[:100]!r}",
        )
    ident = str(item["id"])
    if len(ident) > MAX_FIELD_CHARS:
        raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, f"submission id longer than {MAX_FIELD_CHARS} chars")
    out: dict[str, str | None] = {"id": ident}
    for name in SUBMISSION_FIELDS[1:]:
        value = item.get(name)
        text = None if value is None else str(value)
        out[name] = (
            text if text is None or len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"
        )
    return out


# -- review -----------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#|!])")


def _cell(value: str | None) -> str:
    """Plain text in a Markdown table cell: no links, images or formatting from submitters."""
    if not value:
        return "–"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(value.split()))


def review_body(source: str, submissions: Sequence[Mapping[str, Any]], total: int) -> str:
    """The review's Markdown: what the buttons do, then one table row per submission."""
    lines = [
        f"**{len(submissions)}** new `{source}` submission(s) wait for review.",
        "",
        f"- **{APPROVE}** publishes all of them except the ids listed in *Reject these ids*.",
        f"- **{REJECT}** publishes none; all are recorded as rejected.",
        "",
        "| id | title | submitted by | url |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(s.get('id'))} | {_cell(s.get('title'))} | {_cell(s.get('submitted_by'))} "
        f"| {_cell(s.get('url'))} |"
        for s in submissions
    ]
    if total > len(submissions):
        lines += ["", f"{total - len(submissions)} more were fetched; they are not part of this review."]
    return "\n".join(lines)


class SubmissionReviewOperator(HITLOperator):
    """Ask an administrator to approve or reject the submissions the sync task fetched.

    The return value (XCom) is the response: ``chosen_options``, ``params_input`` (``reject_ids``),
    ``responded_by_user``, ``responded_at`` and ``timedout``.
    """

    def __init__(
        self,
        *,
        source: str,
        sync_task_id: str,
        response_timeout: timedelta | None,
        notifiers: Notifiers = None,
        **kwargs: Any,
    ) -> None:
        params = ParamsDict(kwargs.pop("params", None) or {})
        if REJECT_IDS not in params:
            params[REJECT_IDS] = Param(
                [],
                type="array",
                items={"type": "string"},
                title="Reject these ids",
                description=f"When you choose {APPROVE}: ids from the table to reject anyway.",
                source="task",
            )
        super().__init__(
            subject=f"Review new {source} submissions",
            options=[APPROVE, REJECT],
            defaults=[REJECT],
            multiple=False,
            params=params,
            response_timeout=response_timeout,
            notifiers=notifiers,
            **kwargs,
        )
        self.source = source
        self.sync_task_id = sync_task_id

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        submissions = ti.xcom_pull(task_ids=self.sync_task_id, key=SUBMISSIONS_KEY)
        if not submissions:
            raise AirflowSkipException(f"{self.source}: no submissions fetched, nothing to review")
        total = ti.xcom_pull(task_ids=self.sync_task_id, key=TOTAL_KEY) or len(submissions)
        # Set after template rendering on purpose: submitted text is never rendered as Jinja.
        self.subject = f"Review {len(submissions)} new {self.source} submission(s)"
        self.body = review_body(self.source, submissions, int(total))
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        payload = super().execute_complete(context=context, event=event)
        return {**payload, "timedout": bool(event.get("timedout"))}


# -- publish ----------------------------------------------------------------------------------------


def _reject_ids(params_input: Any) -> set[str]:
    raw = (params_input or {}).get(REJECT_IDS) if isinstance(params_input, Mapping) else None
    if isinstance(raw, str):
        raw = re.split(r"[\s,]+", raw)
    return {str(i).strip() for i in raw or [] if str(i).strip()}


def split_decision(
    submissions: Sequence[Mapping[str, Any]], decision: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(published, rejected)`` for a review response; every rejected entry carries a ``reason``."""
    decision = decision or {}
    user = decision.get("responded_by_user") or {}
    who = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else None
    chosen = list(decision.get("chosen_options") or [])
    if decision.get("timedout") or (not who and chosen):
        verdict = TIMEOUT_REASON
    elif not chosen:
        verdict = "no review decision was recorded"
    else:
        verdict = f"rejected by {who}"
    if chosen != [APPROVE] or verdict == TIMEOUT_REASON:
        return [], [{**s, "reason": verdict} for s in submissions]
    excluded = _reject_ids(decision.get("params_input"))
    published = [{**s, "approved_by": who} for s in submissions if str(s.get("id")) not in excluded]
    rejected = [
        {**s, "reason": f"{verdict} ({REJECT_IDS})"} for s in submissions if str(s.get("id")) in excluded
    ]
    return published, rejected


class PublishSubmissionsOperator(BaseOperator):
    """Publish the approved submissions (XCom ``published`` + asset event), record the rejected ones."""

    ui_color = "#f3ecdf"

    def __init__(self, *, source: str, sync_task_id: str, review_task_id: str, **kwargs: Any) -> None:
        self.asset = published_asset(source)
        kwargs.setdefault("outlets", [self.asset])
        super().__init__(**kwargs)
        self.source = source
        self.sync_task_id = sync_task_id
        self.review_task_id = review_task_id

    def execute(self, context: Any) -> dict[str, int]:
        ti = context["ti"]
        submissions = ti.xcom_pull(task_ids=self.sync_task_id, key=SUBMISSIONS_KEY) or []
        decision = ti.xcom_pull(task_ids=self.review_task_id)
        published, rejected = split_decision(submissions, decision)
        unknown = _reject_ids((decision or {}).get("params_input")) - {str(s.get("id")) for s in submissions}
        if unknown:
            self.log.warning("%s: reject_ids not in this review (ignored): %s", self.source, sorted(unknown))
        ti.xcom_push(key=PUBLISHED_KEY, value=published)
        ti.xcom_push(key=REJECTED_KEY, value=rejected)
        for entry in rejected:
            self.log.info("Rejected %s %r: %s", entry.get("id"), entry.get("title"), entry["reason"])
        if not published:
            message = f"{self.source}: nothing published, {len(rejected)} rejected"
            self.log.info("%s; no %s event", message, self.asset.name)
            raise AirflowSkipException(message)
        context["outlet_events"][self.asset].extra = {
            "published": len(published),
            "ids": [s.get("id") for s in published][:MAX_SUBMISSIONS],
        }
        self.log.info(
            "Published %d %s submission(s), rejected %d", len(published), self.source, len(rejected)
        )
        return {"published": len(published), "rejected": len(rejected)}


def add_review(
    sync_task: BaseOperator, *, source: str, timeout: timedelta, notifiers: Notifiers = None
) -> None:
    """Append ``review`` and ``publish`` after ``sync_task`` (call inside the DAG's ``with`` block)."""
    review = SubmissionReviewOperator(
        task_id=REVIEW_TASK_ID,
        source=source,
        sync_task_id=sync_task.task_id,
        response_timeout=timeout,
        notifiers=notifiers,
    )
    publish = PublishSubmissionsOperator(
        task_id=PUBLISH_TASK_ID,
        source=source,
        sync_task_id=sync_task.task_id,
        review_task_id=REVIEW_TASK_ID,
    )
    sync_task >> review >> publish
