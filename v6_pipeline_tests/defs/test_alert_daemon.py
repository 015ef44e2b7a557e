"""The alert sensors in the real Dagster daemon: a run that fails because the gateway is
down pages a local HTTP server within a minute, sent by the daemon's sensor tick (the
test never calls a sensor).

`dagster-daemon run` (no webserver) runs on a tmp DAGSTER_HOME made by `prepare_home`
and a tmp lake; the failing run is `run_windows` (what `v6 reconcile` runs) in the test's
process, on an instance of the same home: the daemon sees it as any other run.
The daemon and its helpers are `daemon.py`'s, shared with `benchmarks/alert_latency.py`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.defs.partitions import WINDOW, last_closed_window, window_key
from v6_pipeline.defs.sensors import (
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
from v6_pipeline_tests.defs.daemon import (
    daemon_env,
    local_defs,
    running_daemon,
    sensor_ticks,
    tail,
    wait_for_first_ticks,
)
from v6_pipeline_tests.support import DEMO, free_port

PAGE_WITHIN_S = 60.0  # the promise: a failure is paged within a minute


def reasons(instance: dg.DagsterInstance) -> list[str]:
    """What the failure sensor's ticks said, newest first."""
    return [t.skip_reason or "" for t in sensor_ticks(instance, "reconciliation_failure_sensor")]


def _alerted(said: list[str]) -> bool:
    return any("alerted: open pipeline-" in s for s in said)


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


def clear_of_the_schedule(needed_s: float) -> None:
    """Until the next window boundary is more than `needed_s` away. The daemon's schedule
    launches a run at each boundary, and a daemon stopped mid-run kills that run: a
    pipeline page of its own, which is not what a test of one incident counts."""
    now = datetime.now(UTC)
    left = (last_closed_window(now) + 2 * WINDOW - now).total_seconds()
    if left < needed_s:
        time.sleep(left + 5)


@pytest.mark.timeout(480)
def test_the_demo_tick_then_the_daemon_page_once(tmp_path: Path) -> None:
    """`v6 demo --ui`: the demo ticks `discrepancy_alert_sensor` itself on the instance,
    then the daemon starts on it and ticks the same sensor with a cursor of its own, then
    is restarted: one page, one "open raised" row."""
    clear_of_the_schedule(needed_s=200)  # the test takes 80-150 s
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
                    # A tick the stopped daemon left half-done is moved to SKIPPED with no
                    # reason by the next one ("Moving dangling STARTED tick", dagster/
                    # _daemon/sensor.py): it said nothing, so it did nothing.
                    said = [
                        t.skip_reason
                        for t in ticks
                        if t.status == TickStatus.SKIPPED and t.skip_reason
                    ]
                    assert said
                    assert all(s.startswith("nothing new (1 incident(s) open") for s in said), said
    assert len(hook.received) == 1, [body["title"] for body in hook.received]
    rows = alert_log.read(lake_dir)
    assert rows.filter(rows["status"] == "raised")["kind"].to_list() == ["open"]
