"""The alert sensors in the real Dagster daemon: a run that fails because the gateway is
down pages a local HTTP server within a minute, sent by the daemon's sensor tick (the
test never calls a sensor).

`dagster-daemon run` (no webserver) runs on a tmp DAGSTER_HOME made by `prepare_home`
and a tmp lake; the failing run is `run_windows` (what `v6 reconcile` runs) in the test's
process, on an instance of the same home: the daemon sees it as any other run.
`benchmarks/alert_latency.py` drives the daemon with the helpers below.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorTick, InstigatorType, TickStatus

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.partitions import last_closed_window, partitions_start, window_key
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.defs.sensors import (
    ALERT_SENSORS,
    DISCREPANCY,
    INTERVAL_S,
    discrepancy_alert_sensor,
)
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.run.instance import open_instance, prepare_home
from v6_pipeline.run.runner import EXIT_FAILED, run_windows
from v6_pipeline_tests.alerts.support import webhook
from v6_pipeline_tests.support import DEMO, free_port

PAGE_WITHIN_S = 60.0  # the promise: a failure is paged within a minute
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
        start=partitions_start(env),
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
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


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


def reasons(instance: dg.DagsterInstance) -> list[str]:
    """What the failure sensor's ticks said, newest first."""
    return [t.skip_reason or "" for t in sensor_ticks(instance, "reconciliation_failure_sensor")]


def _alerted(said: list[str]) -> bool:
    return any("alerted: open pipeline-" in s for s in said)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.mark.timeout(180)
def test_the_daemon_pages_a_failing_run_within_a_minute(tmp_path: Path) -> None:
    home = prepare_home(tmp_path / "home")
    lake_dir = tmp_path / "lake"
    # A lake that is fine: the run fails on IB alone, not on a missing table.
    Lake(lake_dir).append_position_updates(demo_position_updates(datetime.now(UTC)))
    closed = free_port()  # nothing listens there: the gateway is down
    log_path = tmp_path / "daemon.log"
    with webhook() as hook:
        env = daemon_env(home, lake_dir, ib_port=closed, alert_url=hook.apprise_url)
        defs = local_defs(env)
        # The instance first: it creates the SQLite tables before the daemon's first use.
        with open_instance(home) as instance, running_daemon(env, log_path) as proc:
            wait_for_first_ticks(instance, proc, log_path)
            assert hook.received == []  # a fresh instance pages nobody

            outcome = run_windows(
                defs, window_key(last_closed_window(datetime.now(UTC))), instance=instance
            )
            assert outcome.exit_code == EXIT_FAILED, outcome.failure
            run = instance.get_run_record_by_id(outcome.run_id)
            assert run is not None
            failed_at = run.end_time
            assert failed_at is not None

            # Wait past the promise, to say by how much a late alert missed it.
            deadline = failed_at + PAGE_WITHIN_S + INTERVAL_S
            while not hook.received and time.time() < deadline:
                assert proc.poll() is None, f"the daemon exited:\n{tail(log_path)}"
                time.sleep(0.2)
            paged_after = time.time() - failed_at
            assert hook.received, (
                f"no alert {paged_after:.0f} s after the run failed:\n{tail(log_path)}"
            )
            # The tick that sent it records what it did once it ends, after the POST.
            deadline = time.monotonic() + 30
            said = reasons(instance)
            while not _alerted(said) and time.monotonic() < deadline:
                time.sleep(0.5)
                said = reasons(instance)

    assert paged_after <= PAGE_WITHIN_S, f"paged {paged_after:.1f} s after the run failed"
    [alert] = hook.received  # one pipeline incident; no naked leg was judged, no silence yet
    assert alert["title"].startswith("CRITICAL"), alert["title"]
    assert "GatewayUnreachableError" in alert["title"]
    assert f"Cannot reach IB Gateway/TWS at 127.0.0.1:{closed}" in alert["message"]
    assert f"/runs/{run.dagster_run.run_id}" in alert["message"]
    # Sent by the daemon's tick of the failure sensor, which says so in the UI.
    assert _alerted(said), said
    logged = alert_log.read(lake_dir)
    assert "delivered" in set(logged["status"]), logged


@pytest.mark.timeout(240)
def test_the_demo_tick_then_the_daemon_page_once(tmp_path: Path) -> None:
    """`v6 demo --ui`: the demo ticks `discrepancy_alert_sensor` itself on the instance,
    then the daemon starts on it and ticks the same sensor with a cursor of its own, then
    is restarted: one page, one "open raised" row."""
    home = prepare_home(tmp_path / "home")
    lake_dir = tmp_path / "lake"
    Lake(lake_dir).append_position_updates(demo_position_updates(datetime.now(UTC)))
    with GatewayThread(DEMO) as gateway, webhook() as hook:
        env = daemon_env(home, lake_dir, ib_port=gateway.port, alert_url=hook.apprise_url)
        defs = local_defs(env)
        with open_instance(home) as instance:
            key = window_key(last_closed_window(datetime.now(UTC)))
            run_windows(defs, key, instance=instance)  # the demo's run: a naked leg
            context = dg.build_sensor_context(instance=instance, resources=defs.resources)
            said = discrepancy_alert_sensor.evaluate_tick(context).skip_message or ""
            assert said.startswith("alerted: open naked-"), said
            assert len(hook.received) == 1
            for n in range(2):  # the daemon, then the daemon restarted
                log_path = tmp_path / f"daemon{n}.log"
                with running_daemon(env, log_path) as proc:
                    wait_for_first_ticks(instance, proc, log_path)
                    ticks = sensor_ticks(instance, DISCREPANCY)
                    seen = len(ticks)
                    deadline = time.monotonic() + 60
                    while len(ticks) < seen + 2 and time.monotonic() < deadline:
                        time.sleep(1)  # two more of its ticks, after its first
                        ticks = sensor_ticks(instance, DISCREPANCY)
                    said = [t.skip_reason or "" for t in ticks if t.status == TickStatus.SKIPPED]
                    assert said
                    assert all(s.startswith("nothing new (1 incident(s) open") for s in said), said
    assert len(hook.received) == 1, [body["title"] for body in hook.received]
    rows = alert_log.read(lake_dir)
    assert rows.filter(rows["status"] == "raised")["kind"].to_list() == ["open"]
