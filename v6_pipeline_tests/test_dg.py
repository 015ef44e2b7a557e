"""The project with Dagster's own `dg` CLI (dagster-dg-cli, pinned with the family), as
its docs run it from the project's folder: `dg check defs`, `dg list defs`, and
`dg launch` of one window against the emulator and a real lake."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from v6_pipeline.defs.partitions import last_closed_window, window_key
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline_tests.doctor.support import book_rows

ROOT = Path(__file__).parents[1]  # where dg.toml is
DG = str(Path(sys.executable).with_name("dg"))


def dg(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DG, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
    )


def test_dg_checks_and_lists_the_definitions(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path)}
    checked = dg("check", "defs", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully." in checked.stdout + checked.stderr
    assert "virtual environment does not match" not in checked.stdout + checked.stderr
    listed = dg("list", "defs", env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name in (
        "ib_position_snapshot",
        "delta_latest_positions",
        "position_discrepancies",
        "reconciliation_job",
        "reconciliation_schedule",
        "discrepancy_alert_sensor",
        "reconciliation_failure_sensor",
        "reconciliation_silence_sensor",
        "no_naked_positions",
    ):
        assert name in listed.stdout, name


def test_dg_launch_materializes_one_window(tmp_path: Path, demo_gateway: GatewayThread) -> None:
    lake = tmp_path / "lake"
    now = datetime.now(UTC)
    Lake(lake).append_position_updates(book_rows(now))  # what IB holds: a clean window
    key = window_key(last_closed_window(now))
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "DAGSTER_HOME": str(home),
        "V6_IB_PORT": str(demo_gateway.port),
        "V6_LAKE_DIR": str(lake),
        "V6_IB_TIMEOUT_S": "5",
    }
    launched = dg("launch", "--assets", "*", "--partition", key, env=env)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    judged = pl.read_delta(str(lake / "position_judgment_log"))
    assert judged.height == 1
    snapshot = pl.read_delta(str(lake / "ib_position_snapshots"))
    assert snapshot.height == 6
    assert pl.read_delta(str(lake / "position_discrepancies")).height == 0
