"""Bulk into PostgreSQL through the Celery topology (issue 20): the figures the e2e suite measures.

``tests/e2e/test_celery_postgres.py`` syncs the demo API's ``bulk`` source three times into one
PostgreSQL database: ours run by the scheduler on a Celery worker, dlt's ``rest_api`` alone and ours
outside Airflow (both ``bench.bulk.spawn(..., postgres=..., cold=True)``). This module turns the
measured seconds into ``rows_per_s``, prints one summary line and writes the JSON to
``$SYNC_BENCH_E2E_OUT`` when set (bench/results/e2e_celery_postgres.json is one such run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.measure import rounded

OUT_ENV = "SYNC_BENCH_E2E_OUT"
SIDES = ("ours", "dlt_alone")
OUTSIDE = "ours_outside_airflow"
"""Optional: ours in a bare interpreter (bench/bulk.py), the same sync without the Airflow task around it."""


def figures(
    items: int,
    pages: int,
    seconds: Mapping[str, float],
    load_at_start: Sequence[float],
    load_at_end: Sequence[float],
) -> dict[str, Any]:
    """``rows_per_s`` of each side = ``items`` / its ``seconds``; every measured span kept as is."""
    bad = {key: value for key, value in seconds.items() if not value > 0}
    if bad or not set(SIDES) <= set(seconds):
        raise ValueError(f"every side needs a positive measured time, got {dict(seconds)}")
    return {
        "items": items,
        "pages": pages,
        "rows_per_s": {
            side: rounded(items / seconds[side], 1) for side in (*SIDES, OUTSIDE) if side in seconds
        },
        "seconds": {key: rounded(value, 3) for key, value in seconds.items()},
        "load_average_at_start": list(load_at_start),
        "load_average_at_end": list(load_at_end),
    }


def summary_line(result: Mapping[str, Any]) -> str:
    rate, seconds = result["rows_per_s"], result["seconds"]
    start, end = result["load_average_at_start"][0], result["load_average_at_end"][0]
    return (
        f"bulk e2e (Celery/PostgreSQL, {result['items']:,} items, {result['pages']} pages): "
        f"ours {rate['ours']:,.0f} rows/s ({seconds['ours']:.2f} s), dlt alone "
        f"{rate['dlt_alone']:,.0f} rows/s ({seconds['dlt_alone']:.2f} s), "
        + (
            f"ours outside Airflow {rate[OUTSIDE]:,.0f} rows/s ({seconds[OUTSIDE]:.2f} s), "
            if OUTSIDE in rate
            else ""
        )
        + f"load {start:.2f} -> {end:.2f}"
    )


def record(result: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Path | None:
    """Print the summary line; write the JSON to ``$SYNC_BENCH_E2E_OUT`` if it names a file."""
    print(summary_line(result), flush=True)
    out = environ.get(OUT_ENV)
    if not out:
        return None
    path = Path(out)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
