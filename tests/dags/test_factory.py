"""``build_sync_dags``: custom configs, prefixes, handlers, default args, errors, use from another repo."""

from __future__ import annotations

import statistics
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.config import (
    DEFAULT_SYNC_CONFIGS,
    CircuitBreakerConfig,
    RateLimitConfig,
    SyncConfig,
)
from airflow_sync_provider.run.handlers import SyncContext

REPO = Path(__file__).resolve().parents[2]


def handler_a(ctx: SyncContext) -> int:
    return 1


def handler_b(ctx: SyncContext) -> int:
    return 2


def record(result: Any) -> None:
    pass


ALPHA = SyncConfig(
    source="alpha",
    endpoint="/v2/alpha",
    schedule="*/10 * * * *",
    rate_limit=RateLimitConfig(max_requests=7, window=timedelta(minutes=10)),
    circuit_breaker=CircuitBreakerConfig(failure_threshold=2, reset_timeout=timedelta(minutes=1)),
    max_retries=1,
    max_pages=3,
    conn_id="alpha_api",
)
BETA = SyncConfig(source="beta", schedule=timedelta(hours=6))


def test_default_configs_give_one_dag_per_default_source() -> None:
    dags = build_sync_dags()
    assert list(dags) == [f"sync_{source}" for source in DEFAULT_SYNC_CONFIGS]
    for dag_id, dag in dags.items():
        assert dag.dag_id == dag_id
        assert dag.get_task("sync").config == DEFAULT_SYNC_CONFIGS[dag_id.removeprefix("sync_")]  # type: ignore[attr-defined]


def test_iterable_and_mapping_of_custom_configs_build_the_same_dags() -> None:
    from_list = build_sync_dags([ALPHA, BETA])
    from_mapping = build_sync_dags({"alpha": ALPHA, "beta": BETA})
    from_generator = build_sync_dags(c for c in (ALPHA, BETA))
    assert list(from_list) == list(from_mapping) == list(from_generator) == ["sync_alpha", "sync_beta"]
    for dags in (from_list, from_mapping, from_generator):
        assert dags["sync_alpha"].get_task("sync").config is ALPHA  # type: ignore[attr-defined]
        assert dags["sync_beta"].get_task("sync").config is BETA  # type: ignore[attr-defined]


def test_custom_config_drives_schedule_params_pool_and_doc() -> None:
    dags = build_sync_dags([ALPHA, BETA])
    alpha, beta = dags["sync_alpha"], dags["sync_beta"]
    assert alpha.timetable.expression == "*/10 * * * *"  # type: ignore[attr-defined]
    assert type(beta.timetable).__name__ == "DeltaTriggerTimetable"
    assert beta.timetable.delta == timedelta(hours=6)  # type: ignore[attr-defined]
    assert alpha.max_active_runs == beta.max_active_runs == 1
    assert alpha.catchup is False
    task = alpha.get_task("sync")
    assert (task.pool, task.retries, task.owner) == ("sync_alpha", 0, "sync")
    maxima = {
        name: alpha.params.get_param(name).schema["maximum"]
        for name in ("max_requests", "max_retries", "max_pages")
    }
    assert maxima == {"max_requests": 7, "max_retries": 1, "max_pages": 3}
    with pytest.raises(ParamValidationError):
        alpha.params.get_param("max_requests").resolve(8)
    with pytest.raises(ParamValidationError):
        alpha.params.get_param("dry_run").resolve("yes")
    doc = alpha.doc_md or ""
    for text in (
        "GET `/v2/alpha` on connection `alpha_api`",
        "Schedule: `*/10 * * * *`",
        "7 requests per 10m (sliding window)",
        "| retries per request | 1,",
        "opens after 2 consecutive failures, probes after 1m",
        "`sync_state_alpha`",
        "`sync_alpha` (1 slot)",
    ):
        assert text in doc
    assert "Schedule: `6h`" in (beta.doc_md or "")
    assert alpha.description == "Rate-limited sync of alpha (7 requests per 10m)"


def test_dag_id_prefix_changes_ids_but_not_pools_or_state_keys() -> None:
    dags = build_sync_dags([ALPHA, BETA], dag_id_prefix="acme_")
    assert list(dags) == ["acme_alpha", "acme_beta"]
    task = dags["acme_alpha"].get_task("sync")
    assert task.pool == "sync_alpha"
    assert task.source == "alpha"  # type: ignore[attr-defined]
    assert "`sync_state_alpha`" in (dags["acme_alpha"].doc_md or "")


def test_handler_mapping_is_per_source_and_a_single_handler_is_shared() -> None:
    per_source = build_sync_dags([ALPHA, BETA], handler={"alpha": handler_a})
    assert per_source["sync_alpha"].get_task("sync").handler is handler_a  # type: ignore[attr-defined]
    assert per_source["sync_beta"].get_task("sync").handler is None  # type: ignore[attr-defined]
    shared = build_sync_dags([ALPHA, BETA], handler=handler_b, on_result=record)
    for dag in shared.values():
        assert dag.get_task("sync").handler is handler_b  # type: ignore[attr-defined]
        assert dag.get_task("sync").on_result == [record]  # type: ignore[attr-defined]


def test_default_args_are_merged_and_retries_stay_zero_unless_given() -> None:
    dags = build_sync_dags([ALPHA], default_args={"owner": "data-team", "email": ["a@example.com"]})
    dag = dags["sync_alpha"]
    task = dag.get_task("sync")
    assert dag.default_args["owner"] == "data-team"
    assert dag.default_args["retries"] == 0
    assert (task.owner, task.email, task.retries) == ("data-team", ["a@example.com"], 0)

    given = build_sync_dags([ALPHA], default_args={"retries": 2, "retry_delay": timedelta(minutes=3)})
    task = given["sync_alpha"].get_task("sync")
    assert task.retries == 2
    assert task.retry_delay == timedelta(minutes=3)
    assert task.owner == "sync"


def test_default_args_cannot_move_the_sync_task_out_of_its_pool() -> None:
    dags = build_sync_dags([ALPHA], default_args={"pool": "default_pool", "pool_slots": 1})
    assert dags["sync_alpha"].get_task("sync").pool == "sync_alpha"


def test_duplicate_source_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="source 'alpha' appears twice in configs"):
        build_sync_dags([ALPHA, BETA, ALPHA.replace(max_retries=0)])


def test_mapping_key_that_differs_from_the_source_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"configs\['gamma'\] holds the config of source 'alpha'"):
        build_sync_dags({"gamma": ALPHA})


@pytest.mark.parametrize("bad", [{"source": "alpha"}, "alpha", None])
def test_non_syncconfig_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match=f"configs must hold SyncConfig objects, got {type(bad).__name__}"):
        build_sync_dags([ALPHA, bad])


def test_no_configs_give_no_dags() -> None:
    assert build_sync_dags([]) == {}


OTHER_REPO_DAG = textwrap.dedent(
    """
    # a DAG file in another repository that only imports the provider
    from datetime import timedelta

    from airflow_sync_provider import DEFAULT_SYNC_CONFIGS, RateLimitConfig, SyncConfig, build_sync_dags

    def count_widgets(ctx):
        return 0

    CONFIGS = [
        SyncConfig(source="widgets", endpoint="/api/widgets", schedule="15 * * * *",
                   rate_limit=RateLimitConfig(max_requests=5, window=timedelta(minutes=1)),
                   conn_id="widgets_api"),
        DEFAULT_SYNC_CONFIGS["points"],
    ]
    globals().update(
        build_sync_dags(CONFIGS, handler={"widgets": count_widgets}, dag_id_prefix="ext_",
                        default_args={"owner": "other-team"}, tags=["external"])
    )
    """
)


def test_globals_update_from_a_dag_file_outside_the_repo(tmp_path: Path) -> None:
    assert REPO not in tmp_path.parents
    dag_file = tmp_path / "other_repo_dags.py"
    dag_file.write_text(OTHER_REPO_DAG)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["ext_points", "ext_widgets"]
    widgets = bag.dags["ext_widgets"]
    assert Path(widgets.fileloc) == dag_file
    assert widgets.timetable.expression == "15 * * * *"  # type: ignore[attr-defined]
    task = widgets.get_task("sync")
    assert (task.pool, task.owner, task.retries) == ("sync_widgets", "other-team", 0)
    assert task.handler.__name__ == "count_widgets"  # type: ignore[attr-defined]
    assert task.config.conn_id == "widgets_api"  # type: ignore[attr-defined]
    assert widgets.params.get_param("max_requests").schema["maximum"] == 5
    assert {"sync", "source:widgets", "external"} <= set(widgets.tags)
    assert bag.dags["ext_points"].get_task("sync").handler is None  # type: ignore[attr-defined]
    assert bag.dags["ext_points"].timetable.expression == "0 0 * * *"  # type: ignore[attr-defined]


# -- 1,000 sources --------------------------------------------------------------------------------

N = 1000
GENERATED_DAG = textwrap.dedent(
    f"""
    from airflow_sync_provider import SyncConfig, build_sync_dags

    globals().update(build_sync_dags([SyncConfig(source=f"gen_{{i:04d}}") for i in range({N})]))
    """
)
PLAIN_DAG = textwrap.dedent(
    f"""
    import pendulum
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    for i in range({N}):
        with DAG(dag_id=f"plain_{{i:04d}}", schedule="0 * * * *", catchup=False,
                 start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
            EmptyOperator(task_id="noop")
        globals()[dag.dag_id] = dag
    """
)


def _parse(dag_file: Path) -> tuple[float, DagBag]:
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(dag_file))
    return time.perf_counter() - started, bag


def test_a_thousand_sources_parse_without_errors_and_print_time_next_to_plain_dags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No wall-clock assertion: prints the median of 3 parses of each file, in the same process."""
    generated, plain = tmp_path / "generated_sources.py", tmp_path / "plain_dags.py"
    generated.write_text(GENERATED_DAG)
    plain.write_text(PLAIN_DAG)
    timings: dict[str, list[float]] = {"generated": [], "plain": []}
    for _ in range(3):  # interleaved, so both see the same machine load
        for name, path in (("generated", generated), ("plain", plain)):
            seconds, bag = _parse(path)
            assert bag.import_errors == {}
            assert len(bag.dags) == N
            timings[name].append(seconds)
    last = _parse(generated)[1]
    assert sorted(last.dags)[:2] == ["sync_gen_0000", "sync_gen_0001"]
    task = last.dags["sync_gen_0999"].get_task("sync")
    assert (task.pool, task.retries) == ("sync_gen_0999", 0)
    gen_median, plain_median = statistics.median(timings["generated"]), statistics.median(timings["plain"])
    with capsys.disabled():
        print(
            f"\n[parse time] {N} generated sync DAGs: median {gen_median:.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in timings['generated'])}); "
            f"{N} plain DAGs with one EmptyOperator: median {plain_median:.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in timings['plain'])}); "
            f"ratio {gen_median / plain_median:.1f}x; per sync DAG {gen_median / N * 1000:.2f} ms"
        )


def test_the_operator_refuses_any_pool_but_its_sources_at_parse_time() -> None:
    """One writer per source: a sync outside ``sync_<source>`` could overshoot the shared window."""
    from airflow_sync_provider.exceptions import SyncConfigError
    from airflow_sync_provider.operators.sync import RateLimitedSyncOperator

    with pytest.raises(
        SyncConfigError, match=r"^pool must be 'sync_alpha' \(or left out\).*got 'default_pool'$"
    ):
        RateLimitedSyncOperator(task_id="t", source="alpha", config=ALPHA, pool="default_pool")
    assert RateLimitedSyncOperator(task_id="t", source="alpha", config=ALPHA).pool == "sync_alpha"
    assert RateLimitedSyncOperator(task_id="v", source="alpha", config=ALPHA, pool=None).pool == "sync_alpha"
    assert RateLimitedSyncOperator(task_id="u", source="alpha", config=ALPHA, pool="sync_alpha").pool == (
        "sync_alpha"
    )
