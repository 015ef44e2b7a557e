"""A PostgreSQL instance that cannot be reached: one sentence naming DAGSTER_PG_URL
(`open_instance`'s `InstanceUnavailableError`), not a SQLAlchemy traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from v6_pipeline import cli
from v6_pipeline_tests.production.support import DEPLOY
from v6_pipeline_tests.support import free_port

PASSWORD = "pg-s3cret"


def test_an_unreachable_database_is_one_sentence_naming_dagster_pg_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg2://dagster:{PASSWORD}@127.0.0.1:{port}/dagster"
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    # `v6 reconcile` opens the instance with `open_instance` (its retries take ~10 s).
    assert cli.main(["reconcile"]) == 1
    said = capsys.readouterr().out.strip()
    assert said.startswith(
        "v6 reconcile: cannot open the Dagster instance's PostgreSQL database (DAGSTER_PG_URL: "
        f"postgresql+psycopg2://dagster:***@127.0.0.1:{port}/dagster): "
    )
    assert "Connection refused" in said
    assert "Traceback" not in said
    assert PASSWORD not in said
