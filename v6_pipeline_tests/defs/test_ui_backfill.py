"""A range backfill launched the way the UI launches it: GraphQL against `dagster dev`.

The webserver, the daemon and the run worker are real processes; IB is the emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.defs.partitions import WINDOW, last_closed_window, window_key
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.ib.snapshot import take_snapshot
from v6_pipeline.lake import Lake
from v6_pipeline.run.instance import prepare_home
from v6_pipeline_tests.support import free_port, stop_group, wait_for_ui

ASSETS = ["ib_position_snapshot", "delta_latest_positions", "position_discrepancies"]
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def _graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture
def dagster_dev(tmp_path: Path, demo_gateway: GatewayThread) -> Iterator[tuple[int, Path, Lake]]:
    """`dagster dev` on a tmp lake and home, pointed at the emulator."""
    home = prepare_home(tmp_path / "home")
    lake = Lake(tmp_path / "lake")
    lake.append_position_updates(demo_position_updates(datetime.now(UTC)))
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "V6_IB_PORT": str(demo_gateway.port),
        "V6_LAKE_DIR": str(tmp_path / "lake"),
        "V6_STALE_AFTER_S": "86400",
        # The past windows the test snapshots after the UI has loaded the definitions.
        "V6_PARTITIONS_START": (last_closed_window(datetime.now(UTC)) - 12 * WINDOW).isoformat(),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "v6_pipeline.definitions",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: stopped with its daemon and workers
    )  # fmt: skip
    try:
        wait_for_ui(port, proc)
        yield port, home, lake
    finally:
        stop_group(proc)


def test_ui_range_backfill_rejudges_stored_snapshots_in_one_run(
    dagster_dev: tuple[int, Path, Lake], demo_gateway: GatewayThread
) -> None:
    port, home, lake = dagster_dev
    gateway = demo_gateway
    newest = last_closed_window(datetime.now(UTC))
    windows = [newest - 3 * WINDOW, newest - 2 * WINDOW]
    answer = take_snapshot(gateway.host, gateway.port, 606, timeout_s=5)
    for w in windows:
        lake.write_snapshot(
            answer.positions,
            window_start=w,
            taken_at=w + WINDOW + timedelta(seconds=2),
            accounts=answer.accounts,
            duration_s=answer.duration_s,
        )
    first, last = window_key(windows[0]), window_key(windows[1])
    params = {
        "partitionsByAssets": [
            {"assetKey": {"path": [a]}, "partitions": {"range": {"start": first, "end": last}}}
            for a in ASSETS
        ],
        "title": "re-judge two windows",
    }
    reply = _graphql(port, LAUNCH, {"params": params})
    launched = reply["data"]["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", reply
    backfill_id = launched["backfillId"]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 180
        runs: list[dg.DagsterRun] = []
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
            if runs and all(r.is_finished for r in runs):
                break
            time.sleep(1)
        assert runs, "the backfill launched no run"
        assert all(r.is_finished for r in runs), [r.status for r in runs]
        # One run for the whole range, judged on stored snapshots only.
        assert len(runs) == 1
        # A backfill that judged every window did its job: it succeeds, naming the naked
        # windows in its tag and log (the checks keep telling the present).
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags["v6/verdict"] == "naked in 2 of 2"
        # Stored snapshots only (the running schedule may take its own window meanwhile).
        messages = [e.user_message or "" for e in instance.all_logs(runs[0].run_id)]
        assert not any("taking a live snapshot" in m for m in messages)
        assert "reusing the stored snapshots of 2 of 2 windows" in messages
        # One summary line names the naked windows (each window's page names its legs).
        [summary] = [m for m in messages if " window(s) judged: " in m]
        assert summary.endswith(", ".join(f"{window_key(w)} (1)" for w in windows)), summary
    for w in windows:
        rows = lake.read_discrepancies(window_start=w)
        assert "NAKED_POSITION" in set(rows["type"]), window_key(w)
