"""The multi-process topology, on this machine: the code location served by
`dagster api grpc`, a webserver loading it through deploy/workspace.yaml's `grpc_server`
entry, both on the PostgreSQL instance; a run launched through the webserver's GraphQL
API runs in a process of its own from the gRPC server's code, and finishes.

The webserver launches the run itself (DefaultRunCoordinator) rather than queueing it
for a daemon: a daemon triples the start-up cost of this test on a busy 2-core machine,
and its queue is Dagster's own, not the project's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from v6_pipeline.defs.partitions import last_closed_window, window_key, window_start
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake.lake import Lake
from v6_pipeline_tests.defs.test_ui_backfill import _graphql
from v6_pipeline_tests.defs.test_windows import naked_verdicts
from v6_pipeline_tests.production.support import DEPLOY
from v6_pipeline_tests.support import free_port, wait_for_ui

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

DIRECT_LAUNCH = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the code server exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"the code server did not listen on port {port}")


class Processes:
    """Processes started in their own groups, stopped together."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[subprocess.Popen] = []

    def start(self, *command: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", *command],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: stopped with the runs it started
        )
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.started:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=5)  # nothing to flush: the instance is in PostgreSQL
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def topology(
    tmp_path: Path, pg_home: Path, pg_url: str, demo_gateway: GatewayThread
) -> Iterator[tuple[int, Path]]:
    """The code server and the webserver; the webserver's port and the lake."""
    lake = tmp_path / "lake"
    Lake(lake).append_position_updates(demo_position_updates(datetime.now(UTC)))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(pg_home),
        "DAGSTER_PG_URL": pg_url,
        "V6_IB_PORT": str(demo_gateway.port),
        "V6_LAKE_DIR": str(lake),
    }
    with (pg_home / "dagster.yaml").open("a") as config:
        config.write(DIRECT_LAUNCH)
    code_port, ui_port = free_port(), free_port()
    workspace = load_workspace(code_port)
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    processes = Processes(env)
    try:
        code = processes.start(
            "dagster", "api", "grpc", "-m", "v6_pipeline.definitions",
            "--location-name", "v6_pipeline", "--host", "127.0.0.1", "--port", str(code_port),
        )  # fmt: skip
        _wait_for_port(code_port, code)
        ui = processes.start(
            "dagster_webserver", "-h", "127.0.0.1", "-p", str(ui_port),
            "-w", str(tmp_path / "workspace.yaml"),
        )  # fmt: skip
        wait_for_ui(ui_port, ui)
        yield ui_port, lake
    finally:
        processes.stop()


def load_workspace(code_port: int) -> dict:
    """deploy/workspace.yaml, pointed at this machine's code server."""
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    entry["grpc_server"].update(host="127.0.0.1", port=code_port)
    return workspace


def test_a_run_launched_through_the_webserver_runs_the_grpc_servers_code(
    topology: tuple[int, Path], instance: dg.DagsterInstance
) -> None:
    ui_port, lake = topology
    key = window_key(last_closed_window(datetime.now(UTC)))
    params = {
        "selector": {
            "repositoryLocationName": "v6_pipeline",
            "repositoryName": "__repository__",
            "jobName": "reconciliation_job",
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}]},
    }
    reply = _graphql(ui_port, LAUNCH, {"params": params})
    launched = reply["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", reply
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 240
    run = instance.get_run_by_id(run_id)
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            break
        time.sleep(1)
    assert run is not None
    assert run.is_finished, run.status
    # It ran the gRPC server's code, in a process of its own, and judged the window.
    origin = run.remote_job_origin.repository_origin.code_location_origin
    assert type(origin).__name__ == "GrpcServerCodeLocationOrigin"
    assert run.status == dg.DagsterRunStatus.FAILURE  # the blocking check: the naked leg
    assert naked_verdicts(instance, run_id) == [False]  # live: the checks tell now
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    assert starts[0].dagster_event.pid != os.getpid()
    rows = Lake(lake).read_discrepancies(window_start=window_start(key))
    assert "NAKED_POSITION" in set(rows["type"])
