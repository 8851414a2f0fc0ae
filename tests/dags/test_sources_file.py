"""The sources YAML: overrides, new sources, ``$SYNC_SOURCES_FILE``; errors name file, source and field."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, BackoffConfig, RateLimitConfig
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.sources_file import SOURCES_FILE_ENV, SourcesFileError, load_sources, resolve_path

REPO = Path(__file__).resolve().parents[2]
SYNC_FILE = REPO / "dags" / "sync_sources.py"


def write(tmp_path: Path, text: str, name: str = "sources.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_nested_overrides_merge_key_by_key_and_leave_other_sources_alone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          airdrops:
            rate_limit: {max_requests: 30}
            backoff: {jitter_factor: 0.2, max_delay: 2m}
            circuit_breaker: {failure_threshold: 3}
            timeout: 500ms
          points: {}
          quests: null
        """,
    )
    configs = load_sources(path)
    assert list(configs) == list(DEFAULT_SYNC_CONFIGS)
    airdrops, default = configs["airdrops"], DEFAULT_SYNC_CONFIGS["airdrops"]
    assert airdrops.rate_limit == RateLimitConfig(max_requests=30, window=default.rate_limit.window)
    assert airdrops.backoff == BackoffConfig(
        initial_delay=default.backoff.initial_delay,
        max_delay=timedelta(minutes=2),
        multiplier=default.backoff.multiplier,
        jitter_factor=0.2,
        strategy=default.backoff.strategy,
    )
    assert airdrops.circuit_breaker == default.circuit_breaker.__class__(
        failure_threshold=3,
        reset_timeout=default.circuit_breaker.reset_timeout,
        half_open_max_attempts=default.circuit_breaker.half_open_max_attempts,
    )
    assert airdrops.timeout == timedelta(milliseconds=500)
    assert (
        airdrops.replace(
            rate_limit=default.rate_limit,
            backoff=default.backoff,
            circuit_breaker=default.circuit_breaker,
            timeout=default.timeout,
        )
        == default
    )
    for source in DEFAULT_SYNC_CONFIGS:
        if source != "airdrops":
            assert configs[source] == DEFAULT_SYNC_CONFIGS[source]


def test_a_new_source_takes_defaults_for_every_field_not_given(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          my_api:
            endpoint: /v2/things
            schedule: "*/10 * * * *"
            rate_limit: {window: 10m}
        """,
    )
    configs = load_sources(path)
    assert list(configs) == [*DEFAULT_SYNC_CONFIGS, "my_api"]
    mine = configs["my_api"]
    assert (mine.source, mine.endpoint, mine.schedule) == ("my_api", "/v2/things", "*/10 * * * *")
    assert mine.rate_limit == RateLimitConfig(window=timedelta(minutes=10))
    assert mine.conn_id == "sync_default"
    assert (mine.pool, mine.variable_key) == ("sync_my_api", "sync_state_my_api")


def test_include_defaults_false_keeps_only_the_listed_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        include_defaults: false
        sources:
          points: {timeout: 10s}
          my_api: {}
        """,
    )
    configs = load_sources(path)
    assert list(configs) == ["points", "my_api"]
    # a listed default source still starts from its default config
    assert configs["points"] == DEFAULT_SYNC_CONFIGS["points"].replace(timeout=timedelta(seconds=10))
    assert configs["my_api"].endpoint == "/my_api"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "sources:\n", "include_defaults: true\n"])
def test_an_empty_file_means_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_sources(write(tmp_path, text)) == DEFAULT_SYNC_CONFIGS


def test_resolve_path_prefers_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "default.yaml"
    monkeypatch.delenv(SOURCES_FILE_ENV, raising=False)
    assert resolve_path(default) == default
    monkeypatch.setenv(SOURCES_FILE_ENV, "")
    assert resolve_path(default) == default
    monkeypatch.setenv(SOURCES_FILE_ENV, str(tmp_path / "other.yaml"))
    assert resolve_path(default) == tmp_path / "other.yaml"


def test_shipped_dags_read_the_file_named_by_sync_sources_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
        include_defaults: false
        sources:
          my_api: {endpoint: /v2/things, schedule: "0 3 * * *", rate_limit: {max_requests: 4}}
          quests: {}
        """,
        name="elsewhere.yaml",
    )
    monkeypatch.setenv(SOURCES_FILE_ENV, str(path))
    bag = DagBag(dag_folder=str(SYNC_FILE))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["sync_admin", "sync_my_api", "sync_quests"]
    mine = bag.dags["sync_my_api"]
    assert mine.timetable.expression == "0 3 * * *"  # type: ignore[attr-defined]
    assert mine.get_task("sync").config.endpoint == "/v2/things"  # type: ignore[attr-defined]
    assert mine.params.get_param("max_requests").schema["maximum"] == 4
    assert bag.dags["sync_admin"].params.get_param("source").schema["enum"] == ["my_api", "quests"]


def test_a_bad_sync_sources_file_is_an_import_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "sources:\n  quests:\n    backoff: {jitter_factor: 2}\n", name="bad.yaml")
    monkeypatch.setenv(SOURCES_FILE_ENV, str(path))
    bag = DagBag(dag_folder=str(SYNC_FILE))
    assert bag.dags == {}
    [error] = bag.import_errors.values()
    assert f"{path}: source 'quests': backoff.jitter_factor must be in [0, 1], got 2" in error


# (file text, fragments the message must contain after "<path>: "); the source and field/value
# are named wherever the error is about one source.
BAD_FILES = {
    "unknown key": (
        "sources:\n  airdrops:\n    colour: red\n",
        ["source 'airdrops'", "colour is not a known field", "got 'red'"],
    ),
    "unknown nested key": (
        "sources:\n  yield:\n    rate_limit: {max_request: 3}\n",
        [
            "source 'yield'",
            "rate_limit.max_request is not a known field (known: max_requests, window, safety_margin,",
            "got 3",
        ],
    ),
    "bad duration": (
        "sources:\n  airdrops:\n    timeout: 5 parsecs\n",
        ["source 'airdrops'", "timeout must be a duration", "got '5 parsecs'"],
    ),
    "jitter 2": (
        "sources:\n  quests:\n    backoff: {jitter_factor: 2}\n",
        ["source 'quests'", "backoff.jitter_factor must be in [0, 1], got 2"],
    ),
    "bad source name": (
        "sources:\n  Bad-Name: {}\n",
        ["source 'Bad-Name'", "source must match [a-z][a-z0-9_]{0,62}, got 'Bad-Name'"],
    ),
    "source settings not a mapping": (
        "sources:\n  airdrops: [1, 2]\n",
        ["source 'airdrops'", "airdrops must be a mapping of settings, got [1, 2]"],
    ),
    "source settings false": (
        "sources:\n  sponsored: false\n",
        ["source 'sponsored'", "sponsored must be a mapping of settings, got False"],
    ),
    "file not a mapping": (
        "- airdrops\n- quests\n",
        ["must be a mapping with keys ('include_defaults', 'load', 'sources'), got list"],
    ),
    "sources not a mapping": (
        "sources:\n  - airdrops\n",
        ["sources must be a mapping of source name to settings, got ['airdrops']"],
    ),
    "sources an empty list": (
        "sources: []\n",
        ["sources must be a mapping of source name to settings, got []"],
    ),
    "invalid YAML": (
        "sources:\n  airdrops: {timeout: [\n",
        ["is not valid YAML", "line 3"],
    ),
    "source key mismatch": (
        "sources:\n  airdrops:\n    source: quests\n",
        ["source 'airdrops'", "source must equal the key 'airdrops', got 'quests'"],
    ),
    "unknown top-level key": (
        "include_defaults: true\nsourcez: {}\n",
        ["unknown top-level key 'sourcez' (known: include_defaults, load, sources)"],
    ),
    'include_defaults "yes"': (
        'include_defaults: "yes"\n',
        ["include_defaults must be true or false, got 'yes'"],
    ),
    "negative max_requests": (
        "sources:\n  points:\n    rate_limit: {max_requests: -1}\n",
        ["source 'points'", "rate_limit.max_requests must be an integer >= 1, got -1"],
    ),
    "endpoint with a URL": (
        "sources:\n  yield:\n    endpoint: http://evil.example/x\n",
        [
            "source 'yield'",
            "endpoint must be a path starting with '/' (not a URL), got 'http://evil.example/x'",
        ],
    ),
    "bad cron": (
        "sources:\n  my_api:\n    schedule: every hour\n",
        ["source 'my_api'", "schedule must be a cron expression", "got 'every hour'"],
    ),
    "max_retries not a number": (
        "sources:\n  my_api:\n    max_retries: many\n",
        ["source 'my_api'", "max_retries must be an integer >= 0, got 'many'"],
    ),
}


@pytest.mark.parametrize(("text", "fragments"), BAD_FILES.values(), ids=list(BAD_FILES))
def test_a_bad_file_names_the_file_the_source_and_the_field(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text, name="my-sources.yaml")
    with pytest.raises(SourcesFileError) as raised:
        load_sources(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert raised.value.path == str(path)
    assert isinstance(raised.value, SyncConfigError)
    assert isinstance(raised.value, ValueError)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "sources.yaml"
    with pytest.raises(SourcesFileError) as raised:
        load_sources(path)
    assert str(raised.value) == f"{path}: cannot be read (No such file or directory)"
