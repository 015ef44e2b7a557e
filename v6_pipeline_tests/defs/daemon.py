"""A real `dagster-daemon run` on a tmp home, for the tests that page through it and
`benchmarks/alert_latency.py`: its environment, the definitions of runs launched beside
it, the daemon itself, and its sensor ticks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorTick, InstigatorType, TickStatus

from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.partitions import last_closed_window, partitions_start
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.defs.sensors import ALERT_SENSORS
from v6_pipeline_tests.support import stop_group

START_TIMEOUT_S = 90.0  # the daemon loads the code location, then ticks each sensor
SENSORS = tuple(s.name for s in ALERT_SENSORS)


def daemon_env(home: Path, lake_dir: Path, *, ib_port: int, alert_url: str) -> dict[str, str]:
    """The environment of a daemon (and of `v6` commands beside it) on `home` and
    `lake_dir`, no other `V6_*` setting leaking in from the shell: partitions start 2 h
    back (a fast code location load)."""
    start = last_closed_window(datetime.now(UTC) - timedelta(hours=2))
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("V6_")},
        "DAGSTER_HOME": str(home),
        "V6_LAKE_DIR": str(lake_dir),
        "V6_IB_PORT": str(ib_port),
        "V6_IB_TIMEOUT_S": "3",
        "V6_ALERT_URLS": alert_url,
        "V6_STALE_AFTER_S": "86400",
        "V6_PARTITIONS_START": start.isoformat(),
    }


def local_defs(env: Mapping[str, str]) -> dg.Definitions:
    """The definitions as `env` (`daemon_env`) sets them, for runs launched in this
    process on the daemon's instance."""
    return build_defs(
        {
            "ib": IBGatewayResource(port=int(env["V6_IB_PORT"]), timeout_s=env["V6_IB_TIMEOUT_S"]),
            "lake": LakeResource(lake_dir=env["V6_LAKE_DIR"]),
            "settings": ReconciliationSettings.from_env(stale_after_s=env["V6_STALE_AFTER_S"]),
            "alerts": AlertsResource(urls=env["V6_ALERT_URLS"]),
        },
        start=partitions_start(env, first_run=lambda: None),  # env names the start
    )


@contextmanager
def running_daemon(env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the project's code location, its output in `log_path`;
    stopped with its code server and run workers (its process group) at the end."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # the `dagster-daemon run` command, in this interpreter
            [sys.executable, "-m", "dagster._daemon", "run", "-m", "v6_pipeline.definitions"],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped with everything it started
        )
        try:
            yield proc
        finally:
            stop_group(proc)


def sensor_ticks(instance: dg.DagsterInstance, name: str) -> list[InstigatorTick]:
    """The daemon's ticks of sensor `name`, newest first (none before its first tick)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []


def wait_for_first_ticks(
    instance: dg.DagsterInstance, proc: subprocess.Popen, log_path: Path
) -> None:
    """Return once the daemon has finished a tick of every alert sensor."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the daemon exited:\n{tail(log_path)}"
        if all(_finished(sensor_ticks(instance, name)) for name in SENSORS):
            return
        time.sleep(1)
    raise AssertionError(f"the daemon ticked no alert sensor in time:\n{tail(log_path)}")


def _finished(ticks: list[InstigatorTick]) -> bool:
    return any(t.status != TickStatus.STARTED for t in ticks)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
