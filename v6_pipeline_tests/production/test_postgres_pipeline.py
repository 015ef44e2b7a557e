"""The pipeline on a Dagster instance stored in a real PostgreSQL server (deploy/dagster.yaml):
the job, the schedule's request, a backfill, the alert sensors, and the IB pool."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.defs.partitions import last_closed_window, window_key
from v6_pipeline.defs.resources import AlertsResource, IBGatewayResource, LakeResource
from v6_pipeline.defs.schedules import reconciliation_schedule
from v6_pipeline.defs.sensors import (
    discrepancy_alert_sensor,
    reconciliation_failure_sensor,
    reconciliation_silence_sensor,
)
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.lake.lake import Lake
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_FAILED, run_windows
from v6_pipeline_tests.alerts.support import webhook
from v6_pipeline_tests.defs.support import Pipeline
from v6_pipeline_tests.defs.test_sensors import Sensor
from v6_pipeline_tests.defs.test_windows import (
    naked_verdicts,
    past,
    store_snapshots,
    verdict_lines,
)

IB_STEP = "ib_position_snapshot"


def test_storage_is_postgres_and_shared_by_every_process(pipeline: Pipeline, pg_home: Path) -> None:
    instance = pipeline.instance
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        assert type(storage).__name__.startswith("Postgres"), type(storage)
    key = pipeline.newest_key()
    outcome = run_windows(pipeline.defs, key, instance=instance)
    assert outcome.exit_code == EXIT_CRITICAL
    # Another process (the webserver, the daemon) opening the same home sees the run.
    with dg.DagsterInstance.from_config(str(pg_home)) as other:
        run = other.get_run_by_id(outcome.run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.FAILURE  # the blocking naked check
        assert naked_verdicts(other, outcome.run_id) == [False]
        materialized = other.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("position_discrepancies"),
                asset_partitions=[key],
            ),
            limit=1,
        ).records
        assert materialized[0].run_id == outcome.run_id


def test_the_schedule_requests_the_closed_window_and_skips_while_one_is_in_flight(
    pipeline: Pipeline,
) -> None:
    now = datetime.now(UTC)
    with dg.build_schedule_context(
        instance=pipeline.instance, scheduled_execution_time=now
    ) as context:
        request = reconciliation_schedule(context)
    assert isinstance(request, dg.RunRequest)
    key = window_key(last_closed_window(now))
    assert request.partition_key == key
    outcome = run_windows(pipeline.defs, request.partition_key, instance=pipeline.instance)
    assert outcome.exit_code == EXIT_CRITICAL
    # A run in flight on another machine (no pid to look up here) is waited for.
    pipeline.instance.add_run(
        dg.DagsterRun(
            job_name="reconciliation_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": key},
        )
    )
    with dg.build_schedule_context(
        instance=pipeline.instance, scheduled_execution_time=now
    ) as context:
        skipped = reconciliation_schedule(context)
    assert isinstance(skipped, dg.SkipReason)
    assert "still in flight" in (skipped.skip_message or "")


@pytest.mark.parametrize("batch", ["0", "1000"], ids=["events-one-by-one", "events-batched"])
def test_a_backfill_rejudges_stored_snapshots_in_one_run(
    pipeline: Pipeline, batch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deploy/ sets DAGSTER_EVENT_BATCH_SIZE: a range's materializations in one insert.
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch)
    windows = past(pipeline, 6, 5, 4)
    store_snapshots(pipeline, windows)
    keys = [window_key(w) for w in windows]
    asked = len(pipeline.gateway.snapshots)
    outcome = run_windows(pipeline.defs, keys[0], keys[-1], instance=pipeline.instance)
    assert len(pipeline.gateway.snapshots) == asked  # stored snapshots only, IB not asked
    assert outcome.exit_code == EXIT_CRITICAL
    # Past windows: each verdict on its own partition, none in the checks (they tell now).
    assert naked_verdicts(pipeline.instance, outcome.run_id) == []
    for key, line in verdict_lines(pipeline.instance, keys).items():
        assert line.startswith("NAKED: 1 naked position(s): "), (key, line)
    run = pipeline.instance.get_run_by_id(outcome.run_id)
    assert run is not None
    assert run.tags["dagster/asset_partition_range_start"] == keys[0]
    for w in windows:
        assert "NAKED_POSITION" in set(pipeline.lake.read_discrepancies(window_start=w)["type"])
    stored = pipeline.instance.fetch_materializations(
        dg.AssetKey("position_discrepancies"), limit=100
    ).records
    assert sorted(r.partition_key for r in stored if r.run_id == outcome.run_id) == keys


def test_the_alert_sensors_read_a_postgres_instance(pipeline: Pipeline) -> None:
    with webhook() as hook:
        defs = pipeline.with_resources(alerts=AlertsResource(urls=hook.apprise_url))
        naked = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
        failing = Sensor(reconciliation_failure_sensor, defs, pipeline.instance)
        silence = Sensor(reconciliation_silence_sensor, defs, pipeline.instance)
        for sensor in (naked, failing, silence):
            sensor.tick()
        key = pipeline.newest_key()
        broken = pipeline.with_resources(
            alerts=defs.resources["alerts"], ib=IBGatewayResource(port=1, timeout_s="0.5")
        )
        assert run_windows(broken, key, instance=pipeline.instance).exit_code == EXIT_FAILED
        failing.tick()
        assert len(hook.received) == 1, hook.received
        assert "Cannot reach IB Gateway/TWS at 127.0.0.1:1" in hook.received[0]["message"]
        assert run_windows(defs, key, instance=pipeline.instance).exit_code == EXIT_CRITICAL
        naked.tick()
        silence.tick()
        titles = [body["title"] for body in hook.received]
        assert len(titles) == 2, titles
        assert "CRITICAL" in titles[1].upper()
        assert "NAKED: DU222 SPY 2026-12-18 580 P" in hook.received[1]["message"]
        assert "3 new observation(s)" in silence.said[-1]  # two failed runs, one window


def _ib_step(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the run's IB step started and ended, from the event log."""
    times = {
        entry.dagster_event_type: entry.timestamp
        for entry in instance.all_logs(run_id)
        if entry.step_key == IB_STEP
        and entry.dagster_event_type
        in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
    }
    return times[dg.DagsterEventType.STEP_START], times[dg.DagsterEventType.STEP_SUCCESS]


def _worker(key: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A process that has loaded the job for `key` and runs it on `go`."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "v6_pipeline_tests.production.window_worker", key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    return worker


def _wait(instance: dg.DagsterInstance, until: str, deadline: float) -> None:
    while not getattr(instance.event_log_storage.get_concurrency_info("ib_gateway"), until):
        assert time.monotonic() < deadline, f"no {until} in the ib_gateway pool"
        time.sleep(0.1)


def test_two_runs_at_once_take_turns_at_the_ib_pool(
    pipeline: Pipeline, pg_home: Path, tmp_path: Path
) -> None:
    """Two runs of the newest window, here and in another process, each on its own lake so
    that both must ask IB, and IB slow to answer: the second run's IB step waits for the
    first's pool slot (Dagster's claim, through the shared database)."""
    key = pipeline.newest_key()
    lakes = [tmp_path / "lake1", tmp_path / "lake2"]
    for lake in lakes:
        Lake(lake).append_position_updates(demo_position_updates(datetime.now(UTC)))
    second = _worker(
        key,
        {
            "DAGSTER_HOME": str(pg_home),
            "V6_IB_PORT": str(pipeline.gateway.port),
            "V6_IB_CLIENT_ID": "612",
            "V6_LAKE_DIR": str(lakes[1]),
        },
    )
    first_defs = pipeline.with_resources(
        lake=LakeResource(lake_dir=str(lakes[0])),
        ib=IBGatewayResource(port=pipeline.gateway.port, client_id=611, timeout_s="20"),
    )
    instance = pipeline.instance
    outcome: list = []
    first = threading.Thread(
        target=lambda: outcome.append(run_windows(first_defs, key, instance=instance))
    )
    # Long enough for the other process to reach its claim (2-4 s on a busy machine).
    pipeline.gateway.set_faults(["delay:10"])
    try:
        first.start()
        deadline = time.monotonic() + 120
        _wait(instance, "claimed_slots", deadline)
        assert second.stdin is not None
        second.stdin.write("go\n")
        second.stdin.flush()
        _wait(instance, "pending_step_count", deadline)
        pipeline.gateway.set_faults([])  # it waits: its own snapshot need not be slow
        second_run = second.communicate(timeout=120)[0].split()[-1]
        first.join(timeout=120)
    finally:
        second.kill()
    run_ids = [outcome[0].run_id, second_run]
    (a_start, a_end), (b_start, b_end) = (_ib_step(instance, r) for r in run_ids)
    assert a_end <= b_start, (a_start, a_end, b_start, b_end)
    blocked = [
        e.user_message
        for e in instance.all_logs(second_run, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if e.step_key == IB_STEP
    ]
    assert "Step blocked by limit for pool ib_gateway" in blocked
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.FAILURE  # both judged: the naked leg
    info = instance.event_log_storage.get_concurrency_info("ib_gateway")
    assert info.slot_count == 1
    assert info.claimed_slots == []  # both runs gave their slot back
