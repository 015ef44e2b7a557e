"""A run whose process died never wedges the pipeline (issue: SIGKILL mid-snapshot)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.assets import IB_POOL
from v6_pipeline.defs.dead_runs import PoolBusyError, wait_for_pool
from v6_pipeline.defs.resources import resources_from_env
from v6_pipeline.defs.schedules import reconciliation_schedule
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.run.instance import open_instance
from v6_pipeline.run.runner import resolve_job
from v6_pipeline_tests.support import v6


@pytest.fixture
def env(demo_gateway: GatewayThread, tmp_path: Path) -> dict[str, str]:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    return {
        "V6_IB_PORT": str(demo_gateway.port),
        "V6_LAKE_DIR": str(tmp_path / "lake"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "V6_IB_TIMEOUT_S": "40",
    }


def kill_mid_snapshot(env: dict[str, str]) -> int:
    """Start `v6 reconcile` against a slow gateway and SIGKILL it mid-snapshot."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "v6_pipeline.cli", "reconcile", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    seen = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "taking a live snapshot" in line or time.monotonic() > deadline:
            break
    assert "taking a live snapshot" in "".join(seen), "".join(seen)
    time.sleep(1)  # inside the snapshot, holding the ib_gateway slot
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def runs(home: Path) -> list[dg.DagsterRun]:
    return list(open_instance(home).get_runs())


def test_the_next_reconcile_reaps_a_killed_run(
    demo_gateway: GatewayThread, env: dict[str, str], tmp_path: Path
) -> None:
    demo_gateway.set_faults(["delay:25"])
    pid = kill_mid_snapshot(env)
    demo_gateway.set_faults([])
    started = time.monotonic()
    proc = v6("reconcile", env=env, timeout=90)
    assert time.monotonic() - started < 60
    assert proc.returncode == 2, proc.stdout + proc.stderr  # the demo book's naked leg
    dead = [r for r in runs(tmp_path / "home") if r.tags.get("v6/pid") == str(pid)]
    assert len(dead) == 1
    assert dead[0].status == dg.DagsterRunStatus.FAILURE
    instance = open_instance(tmp_path / "home")
    failure = next(
        e.message
        for e in instance.all_logs(dead[0].run_id)
        if e.dagster_event and e.dagster_event.is_run_failure
    )
    assert "died without finishing" in failure
    assert "pool slot was freed" in failure
    assert not instance.event_log_storage.get_concurrency_info(IB_POOL).claimed_slots


def test_the_schedule_does_not_skip_for_a_dead_run(
    demo_gateway: GatewayThread, env: dict[str, str], tmp_path: Path
) -> None:
    demo_gateway.set_faults(["delay:25"])
    kill_mid_snapshot(env)
    instance = open_instance(tmp_path / "home")
    # In a `with`, as the daemon does: the context opens an instance of its own (from the
    # ref), and only closing it puts the current instance context back.
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC)
    ) as context:
        assert isinstance(reconciliation_schedule(context), dg.RunRequest)
    assert all(r.status == dg.DagsterRunStatus.FAILURE for r in instance.get_runs())


def test_a_live_holder_is_waited_for_with_a_deadline(tmp_path: Path) -> None:
    instance = open_instance(tmp_path / "home")
    job = resolve_job(build_defs(resources_from_env({})), instance)
    # A run of this very process holds the slot: alive, so it must not be reaped.
    run = instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={"v6/pid": str(os.getpid())}
    )
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(IB_POOL)  # as the executor does
    storage.claim_concurrency_slot(IB_POOL, run.run_id, "ib_position_snapshot")
    with pytest.raises(PoolBusyError, match=run.run_id):
        wait_for_pool(instance, IB_POOL, job_name=job.name, deadline_s=1)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED


def test_two_reconciles_on_a_fresh_home_both_finish(env: dict[str, str]) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "v6_pipeline.cli", "reconcile", "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [2, 2, 2], outs
    assert not any("already exists" in out for out in outs)
