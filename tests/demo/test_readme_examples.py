"""The README tour's task-log examples are what a real sync prints: the demo's own ``airdrops`` config
(dags/sources.yaml) against the demo API, landing in DuckDB, then through an outage. Numbers (window
percentages, waits, durations, dates) vary from run to run and are compared as ``N``; every word,
separator and the order of the parts must match."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.sources_file import load_sources
from tests.hook import FakeClock, Sleeps, connect, make_hook, sync_once

pytest.importorskip("dlt")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- readme-example: ([\w-]+) -->\n\s*```\n(.*?)\n\s*```", re.S)


def readme_examples() -> dict[str, list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return {name: [line.strip() for line in body.splitlines()] for name, body in EXAMPLE.findall(text)}


def shape(line: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "N", line)


def logged(capfd: pytest.CaptureFixture[str]) -> list[str]:
    """The operator's log messages since the last call (structlog: ``... [level] message [logger]``)."""
    lines = []
    for line in capfd.readouterr().out.splitlines():
        if "[airflow.task.operators" in line and "] " in line:
            lines.append(line.split("] ", 1)[1].rsplit(" [airflow.task", 1)[0].strip())
    return lines


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DemoServer]:
    with DemoServer() as server:
        connect(monkeypatch, server.url)
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))  # DuckDB files land here
        yield server


def test_the_tour_examples_match_a_real_sync(demo: DemoServer, capfd: pytest.CaptureFixture[str]) -> None:
    examples = readme_examples()
    assert set(examples) == {"first-sync", "outage", "skipped"}
    config = load_sources(REPO / "dags" / "sources.yaml")["airdrops"]
    clock = FakeClock()
    hook = make_hook(clock)  # one state store across the syncs, as the Variable is in the demo

    def sync() -> list[str]:
        sync_once(hook, config, clock=clock, sleep=Sleeps(clock))
        return [shape(line) for line in logged(capfd)]

    real = {"first-sync": sync()}
    clock.advance(3600)
    demo.set_fault("outage", source="airdrops")
    real["outage"] = sync()  # 4 failed requests: gives up
    sync()  # the 5th failed request opens the breaker
    real["skipped"] = sync()

    for name, lines in examples.items():
        missing = [line for line in lines if shape(line) not in real[name]]
        assert not missing, (
            f"README example {name!r} not in a real run's log:\n{missing}\nreal:\n{real[name]}"
        )
