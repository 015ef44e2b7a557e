"""Fixtures for the production shape: a real PostgreSQL server, and Dagster instances
stored in it through `deploy/dagster.yaml`; a real S3 API (moto's server) for the lake.

`instance` here is a Postgres-backed instance, so the shared `pipeline` fixture (the
project's definitions bound to the emulator and a tmp lake) runs on PostgreSQL.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.lake.storage import SETTINGS
from v6_pipeline_tests.defs.conftest import pipeline as pipeline
from v6_pipeline_tests.production.s3 import S3Server, start_s3
from v6_pipeline_tests.production.support import (
    DEPLOY,
    PostgresServer,
    PostgresUnavailableError,
    start_postgres,
)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresUnavailableError as exc:
        # Never a skip: these tests are the proof that the production shape works.
        pytest.fail(f"no PostgreSQL server for the production tests: {exc}", pytrace=False)
    try:
        # Dagster creates its ~20 tables once, in a template: copying it takes a fraction
        # of the ~10 s that creating them takes on a loaded machine.
        template = server.create_database()
        home = _home(tmp_path_factory.mktemp("template_home"))
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DAGSTER_PG_URL", server.url(template))
            with dg.DagsterInstance.from_config(str(home)) as instance:
                instance.get_runs(limit=1)
        server.template = template
        yield server
    finally:
        server.stop()


def _home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY / "dagster.yaml", path / "dagster.yaml")
    return path


@pytest.fixture
def pg_url(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """DAGSTER_PG_URL of a fresh database, set in the environment as a deployment sets it."""
    url = postgres.url(postgres.create_database())
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    return url


@pytest.fixture
def pg_home(tmp_path: Path, pg_url: str) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml, as the README tells an operator to do."""
    return _home(tmp_path / "dagster_home")


@pytest.fixture
def instance(pg_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(pg_home)) as inst:
        yield inst


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, its settings in the environment as a deployment sets them: the
    others empty, as Compose and the Docker run launcher pass unset ones on."""
    for name in SETTINGS:
        monkeypatch.setenv(name, "")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
