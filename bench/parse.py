"""Parse: DagBag time of N sources from our factory vs N plain one-task DAGs, and import times.

Both sides are one generated DAG file in its own folder, parsed by Airflow's ``DagBag`` in this
process, alternately, after one warm-up parse each; the median of the repetitions is reported, in
CPU seconds of this process (the wall-clock medians are kept in ``wall_s``: on a shared machine they
also count the time other processes held the cores).

- ours: ``globals().update(build_sync_dags([SyncConfig(source=...) for N sources]))``.
- plain: N DAGs with the same schedule, start date, ``catchup``, ``max_active_runs``, default args
  and tags, each with one ``EmptyOperator``: what a user would write without the provider.
- diagnostic: the plain DAGs plus the four manual-trigger ``Param``s passed as ``DAG(params=...)``,
  the usual way, to show what the form costs that way (Airflow checks every Param's JSON schema
  against its meta-schema when such a DAG is built, and copies the params into each task).

Import times are measured in fresh interpreters: ``import airflow_sync_provider`` (lazy package
root) and ``import airflow_sync_provider.operators.sync`` after ``airflow.sdk`` (so the provider's
own share is visible next to Airflow's).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import median, rounded, timed

OURS = """\
from airflow_sync_provider import SyncConfig, build_sync_dags

globals().update(build_sync_dags([SyncConfig(source=f"s{{i:05d}}") for i in range({n})]))
"""

OURS_WITHOUT_FORM = """\
from airflow_sync_provider import SyncConfig, build_sync_dags

configs = [SyncConfig(source=f"s{{i:05d}}") for i in range({n})]
globals().update(build_sync_dags(configs, trigger_params=False))
"""

PLAIN = """\
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
{extra_import}
for i in range({n}):
    with DAG(
        dag_id=f"sync_s{{i:05d}}",
        schedule="0 * * * *",
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={{"owner": "sync", "retries": 0}},
        tags=["sync", f"source:s{{i:05d}}"],{extra_arg}
    ) as dag:
        EmptyOperator(task_id="sync")
    globals()[dag.dag_id] = dag
"""

WITH_PARAMS = (
    "from airflow_sync_provider.config import SyncConfig\n"
    "from airflow_sync_provider.authoring.dag_factory import sync_params\n",
    "\n        params=sync_params(SyncConfig(source=f's{i:05d}')),",
)


def write_files(root: Path, n: int) -> dict[str, Path]:
    folders = {}
    for name, text in (
        ("ours", OURS.format(n=n)),
        ("ours_without_trigger_params", OURS_WITHOUT_FORM.format(n=n)),
        ("plain", PLAIN.format(n=n, extra_import="", extra_arg="")),
        ("plain_with_params", PLAIN.format(n=n, extra_import=WITH_PARAMS[0], extra_arg=WITH_PARAMS[1])),
    ):
        folder = root / name
        folder.mkdir()
        (folder / f"generated_{name}.py").write_text(text)
        folders[name] = folder
    return folders


def parse_folder(folder: Path, expected: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one DagBag parse of ``folder``.

    CPU time of this process is the ratio's basis: on a shared machine the wall time of a parse
    also counts the time other processes held the cores (it varied 3x between repetitions).
    """
    from airflow.dag_processing.dagbag import DagBag

    gc.collect()  # garbage of the previous parse is not charged to this one
    cpu_started = time.process_time()
    seconds, bag = timed(lambda: DagBag(dag_folder=str(folder), safe_mode=False))
    cpu = time.process_time() - cpu_started
    if bag.import_errors or len(bag.dags) != expected:
        raise RuntimeError(f"{folder.name}: {len(bag.dags)} DAGs, errors {bag.import_errors}")
    return cpu, float(seconds)


def import_times(repetitions: int) -> dict[str, Any]:
    package = []
    sdk = []
    operator = []
    for _ in range(repetitions):
        package.append(_subprocess_seconds("import airflow_sync_provider")["t"])
        out = _subprocess_seconds(
            "import airflow.sdk\nfrom airflow.sdk import BaseOperator\n"
            "t1 = time.perf_counter()\nimport airflow_sync_provider.operators.sync"
        )
        sdk.append(out["t1"])
        operator.append(out["t"])
    return {
        "repetitions": repetitions,
        "airflow_sync_provider_s": rounded(median(package), 4),
        "operators_sync_total_s": rounded(median(operator), 3),
        "operators_sync_after_airflow_sdk_s": rounded(
            median(o - s for o, s in zip(operator, sdk, strict=True)), 3
        ),
        "airflow_sdk_s": rounded(median(sdk), 3),
    }


def _subprocess_seconds(body: str) -> dict[str, float]:
    code = (
        "import json, time\nt0 = time.perf_counter()\nt1 = t0\n"
        + body
        + "\nprint(json.dumps({'t': time.perf_counter() - t0, 't1': t1 - t0}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(quick: bool = False) -> dict[str, Any]:
    n = 200 if quick else 1000
    repetitions = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        folders = write_files(Path(tmp), n)
        cpu: dict[str, list[float]] = {name: [] for name in folders}
        wall: dict[str, list[float]] = {name: [] for name in folders}
        for folder in folders.values():
            parse_folder(folder, n)  # warm-up: first imports, caches
        for _ in range(repetitions):
            for name, folder in folders.items():
                seconds = parse_folder(folder, n)
                cpu[name].append(seconds[0])
                wall[name].append(seconds[1])
    ours, plain = median(cpu["ours"]), median(cpu["plain"])
    with_params = median(cpu["plain_with_params"])
    without_form = median(cpu["ours_without_trigger_params"])
    wall_plain = median(wall["plain"])
    return {
        "sources": n,
        "repetitions": repetitions,
        "clock": "process CPU seconds (wall seconds in wall_s)",
        "ours_s": rounded(ours),
        "plain_s": rounded(plain),
        "ratio_vs_plain": rounded(ours / plain, 2),
        "ours_without_trigger_params_s": rounded(without_form),
        "ratio_without_trigger_params_vs_plain": rounded(without_form / plain, 2),
        "plain_with_same_params_s": rounded(with_params),
        "ratio_plain_with_same_params_vs_plain": rounded(with_params / plain, 2),
        "wall_s": {name: rounded(median(values)) for name, values in wall.items()},
        "wall_ratio_vs_plain": rounded(median(wall["ours"]) / wall_plain, 2),
        "all_s": {name: [rounded(t) for t in values] for name, values in cpu.items()},
        "import": import_times(1 if quick else 3),
    }
