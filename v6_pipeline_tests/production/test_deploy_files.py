"""deploy/: the instance configs are valid Dagster config and agree with the embedded one;
docker-compose.yaml, the run launcher and the Helm values describe the standard topology,
forward every setting the code location and the lake read, and every variable they name is
documented in a settings table of README.md or docs/. (No Docker engine or cluster runs here.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from v6_pipeline.defs.partitions import START_ENV
from v6_pipeline.defs.resources import RESOURCES
from v6_pipeline.defs.retention import RunRetentionResource
from v6_pipeline.lake.storage import SETTINGS as STORAGE_SETTINGS
from v6_pipeline_tests.manual import table_rows
from v6_pipeline_tests.production.support import DEPLOY, REPO

# The instance's own settings every run needs: its database, its event batching.
INSTANCE_SETTINGS = ("DAGSTER_PG_URL", "DAGSTER_EVENT_BATCH_SIZE")
CODE_COMMAND = [
    "dagster", "api", "grpc", "-m", "v6_pipeline.definitions",
    "--location-name", "v6_pipeline", "--host", "0.0.0.0", "--port", "4000",
]  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yaml")


@pytest.fixture(scope="module")
def launcher() -> dict[str, Any]:
    return load(DEPLOY / "docker" / "run_launcher.yaml")["run_launcher"]


@pytest.fixture(scope="module")
def helm() -> dict[str, Any]:
    return load(DEPLOY / "helm" / "values.yaml")


def code_location_settings() -> set[str]:
    """Every variable the code location reads when it loads (and so does every run)."""
    classes = {*RESOURCES.values(), RunRetentionResource}
    return {variable for cls in classes for variable in cls.ENV.values()} | {START_ENV}


def empty_means_off() -> dict[str, str]:
    """Variables whose empty value switches something off, with their defaults."""
    classes = {*RESOURCES.values(), RunRetentionResource}
    return {
        variable: cls.model_fields[field].default
        for cls in classes
        for field, variable in cls.ENV.items()
        if variable in cls.EMPTY_MEANS_OFF
    }


def test_the_instance_configs_are_valid_and_keep_the_embedded_limits(tmp_path: Path) -> None:
    # The image's instance: deploy/dagster.yaml with the Docker run launcher appended.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "cat /tmp/instance/dagster.yaml /tmp/instance/run_launcher.yaml >" in dockerfile
    (tmp_path / "dagster.yaml").write_text(
        (DEPLOY / "dagster.yaml").read_text()
        + (DEPLOY / "docker" / "run_launcher.yaml").read_text()
    )
    production, _ = dagster_instance_config(str(DEPLOY))
    docker, _ = dagster_instance_config(str(tmp_path))
    assert {k: v for k, v in docker.items() if k != "run_launcher"} == production
    assert production["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    embedded, _ = dagster_instance_config(str(REPO / "v6_pipeline"))
    for key in ("telemetry", "nux", "run_monitoring"):
        assert production[key] == embedded[key], key
    assert production["concurrency"]["pools"] == embedded["concurrency"]["pools"]


def test_an_unset_DAGSTER_PG_URL_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    with pytest.raises(dg.DagsterInvalidConfigError, match='"DAGSTER_PG_URL" which is not set'):
        dg.DagsterInstance.from_config(str(tmp_path))


def test_compose_runs_the_standard_topology(
    compose: dict[str, Any], launcher: dict[str, Any]
) -> None:
    services = compose["services"]
    assert {"postgres", "code", "webserver", "daemon"} <= set(services)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["code"]["command"] == CODE_COMMAND
    assert f"CMD {CODE_COMMAND}".replace("'", '"') in (DEPLOY / "Dockerfile").read_text()
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    workspace = load(DEPLOY / "workspace.yaml")["load_from"]
    assert workspace == [
        {"grpc_server": {"host": "code", "port": 4000, "location_name": "v6_pipeline"}}
    ]
    for service in ("webserver", "daemon"):
        assert "/opt/v6/workspace.yaml" in services[service]["command"]
    assert services["ib-gateway"]["profiles"] == ["staging"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]
    # Runs join the stack's network and mount its volumes, by their fixed names.
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert compose["networks"]["v6_network"]["name"] == launcher["config"]["network"]
    for mount in launcher["config"]["container_kwargs"]["volumes"]:
        volume = mount.split(":")[0]
        assert compose["volumes"][volume]["name"] == volume


def test_every_setting_reaches_the_code_location_and_the_runs(
    compose: dict[str, Any], launcher: dict[str, Any]
) -> None:
    settings = code_location_settings()
    forwarded = set(launcher["config"]["env_vars"])
    assert forwarded == settings | {*INSTANCE_SETTINGS, *STORAGE_SETTINGS}
    services = compose["services"]
    for service in ("code", "daemon"):  # the daemon forwards its own values to the runs
        assert set(services[service]["environment"]) >= forwarded, service
    # An empty value would switch these off: unset must keep the code's default.
    for variable, default in empty_means_off().items():
        assert services["code"]["environment"][variable] == f"${{{variable}-{default}}}"


def test_helm_values_use_the_k8s_run_launcher_and_the_same_limits(helm: dict[str, Any]) -> None:
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"][:2] == ["-m", "v6_pipeline.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert set(deployment["env"]) <= code_location_settings() | {
        *STORAGE_SETTINGS,
        "DAGSTER_EVENT_BATCH_SIZE",
    }
    assert deployment["env"]["DAGSTER_EVENT_BATCH_SIZE"] == "1000"
    assert helm["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    production = load(DEPLOY / "dagster.yaml")
    concurrency = helm["concurrency"]
    assert (
        concurrency["pools"]["defaultLimit"] == production["concurrency"]["pools"]["default_limit"]
    )
    runs = production["concurrency"]["runs"]
    assert concurrency["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert concurrency["runs"]["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    for kind in ("schedule", "sensor"):
        purge = helm["retention"][kind]["purgeAfterDays"]
        assert purge == production["retention"][kind]["purge_after_days"], kind


def test_the_image_installs_launchers_of_the_pinned_release() -> None:
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (postgres,) = [p for p in pins if p.startswith("dagster-postgres==")]
    release = postgres.split("==")[1]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for package in ("dagster-docker", "dagster-k8s"):
        assert f"{package}=={release}" in dockerfile, package


def test_every_variable_the_deploy_files_name_is_documented(
    compose: dict[str, Any], launcher: dict[str, Any], helm: dict[str, Any]
) -> None:
    named = set(re.findall(r"\$\{([A-Z0-9_]+)", (DEPLOY / "docker-compose.yaml").read_text()))
    named |= set(re.findall(r"env: ([A-Z0-9_]+)", (DEPLOY / "dagster.yaml").read_text()))
    named |= set(launcher["config"]["env_vars"])
    named |= set(helm["dagster-user-deployments"]["deployments"][0]["env"])
    rows = table_rows()  # README.md and docs/*.md
    documented = {name for name in named if any(f"`{name}`" in row for row in rows)}
    assert named - documented == set(), "add these to a settings table in README.md or docs/"
