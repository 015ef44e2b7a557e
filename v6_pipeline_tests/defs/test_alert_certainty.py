"""What the alert sensor cannot read is never a verdict and never a resolution (issue #20).

Real runs of the real job against the emulator; the lake then made unreadable for one
sensor tick: moved away (a local path that no longer holds it), its S3 server out of
reach, an older copy restored in its place (without the window's rows), or the sensor
pointed at another lake than the runs write. That tick must change no incident, send
nothing and say what it could not read and which setting to check; the next readable
tick goes on as if nothing happened, and only a judged window that proves the legs gone
resolves the alert.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.alerts.state import IncidentKind
from v6_pipeline.alerts.tick import AlertCursor
from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.partitions import window_key, window_start
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.defs.sensors import discrepancy_alert_sensor, reconciliation_failure_sensor
from v6_pipeline.demo.book import DEMO_STALE_AFTER_S, demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.lake.storage import SETTINGS
from v6_pipeline.run.runner import run_windows
from v6_pipeline_tests.alerts.support import Webhook
from v6_pipeline_tests.production.conftest import s3_server as s3_server
from v6_pipeline_tests.production.s3 import S3Server
from v6_pipeline_tests.support import free_port

from .support import Pipeline, history_start
from .test_sensors import Sensor, alerting, delta_row, hook, titles
from .test_windows import past, store_snapshots

__all__ = ["hook"]  # the fixture, shared with test_sensors


def _opened(pipeline: Pipeline, hook: Webhook, sensor: Sensor) -> str:
    """Judge the newest window naked, page it; judge it naked again (the run fails on
    `no_naked_positions`), not yet read by the sensor. Returns the window's key."""
    sensor.tick()  # the first tick, before anything was judged
    key = pipeline.newest_key()
    assert run_windows(sensor.defs, key, instance=pipeline.instance).naked_check_passed is False
    sensor.tick()
    assert len(hook.received) == 1, titles(hook)
    assert "CRITICAL" in titles(hook)[0].upper()
    assert run_windows(sensor.defs, key, instance=pipeline.instance).naked_check_passed is False
    return key


def _unchanged(sensor: Sensor, before: str | None, said: str, hook: Webhook, *words: str) -> None:
    assert len(hook.received) == 1, titles(hook)  # no RESOLVED, nothing at all
    assert sensor.shared == before  # no incident state, no position moved
    assert "judged nothing" in said
    for word in words:
        assert word in said, said


def _close_the_legs(pipeline: Pipeline, key: str) -> None:
    taken = pipeline.lake.read_snapshot(window_start=window_start(key)).taken_at
    pipeline.lake.append_position_updates(delta_row(500004, 0.0, taken - timedelta(seconds=30)))


def test_a_lake_moved_away_during_a_tick_neither_resolves_nor_sends(
    pipeline: Pipeline, hook: Webhook
) -> None:
    sensor = Sensor(discrepancy_alert_sensor, alerting(pipeline, hook), pipeline.instance)
    key = _opened(pipeline, hook, sensor)
    lake_dir = Path(pipeline.lake.lake_dir)
    away = lake_dir.with_name("lake-elsewhere")
    before = sensor.shared
    lake_dir.rename(away)  # the path the daemon reads no longer holds the lake
    try:
        said = sensor.tick()
    finally:
        away.rename(lake_dir)
    _unchanged(sensor, before, said, hook, "position_discrepancies", "V6_LAKE_DIR")

    said = sensor.tick()  # readable again: the same naked leg, still open, no new page
    assert "1 new observation(s)" in said or "2 new observation(s)" in said, said
    assert len(hook.received) == 1, titles(hook)
    state = AlertCursor.from_json(sensor.shared).state
    assert state.open(IncidentKind.NAKED) is not None

    _close_the_legs(pipeline, key)  # a judged window that proves the leg gone resolves it
    run_windows(sensor.defs, key, instance=pipeline.instance)
    sensor.tick()
    assert len(hook.received) == 2, titles(hook)
    assert "RESOLVED" in titles(hook)[1].upper()


def _stale_copy(pipeline: Pipeline, defs: dg.Definitions, to: Path) -> None:
    """A copy of the lake holding a discrepancies table with the rows of a past window
    only, judged first: a stale backup, or another lake."""
    old = past(pipeline, 6)
    store_snapshots(pipeline, old)
    run_windows(defs, window_key(old[0]), instance=pipeline.instance)
    shutil.copytree(pipeline.lake.lake_dir, to)


def test_a_lake_restored_without_the_windows_rows_does_not_resolve(
    pipeline: Pipeline, hook: Webhook, tmp_path: Path
) -> None:
    defs = alerting(pipeline, hook)
    _stale_copy(pipeline, defs, tmp_path / "backup")
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    key = _opened(pipeline, hook, sensor)
    before = sensor.shared
    lake_dir = Path(pipeline.lake.lake_dir)
    lake_dir.rename(tmp_path / "current")
    (tmp_path / "backup").rename(lake_dir)  # the path now holds an older lake
    try:
        said = sensor.tick()
    finally:
        lake_dir.rename(tmp_path / "backup")
        (tmp_path / "current").rename(lake_dir)
    _unchanged(sensor, before, said, hook, f"0 row(s) of window {key}", "V6_LAKE_DIR")

    sensor.tick()  # the lake back: no page (the same leg), still open
    assert len(hook.received) == 1, titles(hook)
    assert AlertCursor.from_json(sensor.shared).state.open(IncidentKind.NAKED) is not None


def test_a_sensor_reading_another_lake_than_the_runs_does_not_resolve(
    pipeline: Pipeline, hook: Webhook, tmp_path: Path
) -> None:
    defs = alerting(pipeline, hook)
    other = tmp_path / "other-lake"
    _stale_copy(pipeline, defs, other)
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    key = _opened(pipeline, hook, sensor)
    before = sensor.shared
    sensor.defs = pipeline.with_resources(
        alerts=defs.resources["alerts"], lake=LakeResource(lake_dir=str(other))
    )
    said = sensor.tick()
    _unchanged(sensor, before, said, hook, f"window {key} was judged into", "V6_LAKE_DIR")

    sensor.defs = defs  # back on the runs' lake: no page (the same leg), still open
    sensor.tick()
    assert len(hook.received) == 1, titles(hook)
    assert AlertCursor.from_json(sensor.shared).state.open(IncidentKind.NAKED) is not None


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name in SETTINGS:
        monkeypatch.setenv(name, "")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def s3_pipeline(gateway: GatewayThread, lake: Lake, instance: dg.DagsterInstance) -> Pipeline:
    """The project's definitions bound to the emulator and an S3 `lake` holding the demo's
    position log."""
    lake.append_position_updates(demo_position_updates(datetime.now(UTC)))
    defs = build_defs(
        {
            "ib": IBGatewayResource(port=gateway.port, timeout_s="5"),
            "lake": LakeResource(lake_dir=lake.lake_dir),
            "settings": ReconciliationSettings.from_env(stale_after_s=str(DEMO_STALE_AFTER_S)),
            "alerts": AlertsResource(),
        },
        start=(start := history_start()),
    )
    return Pipeline(defs, lake, instance, gateway, start)


def test_an_s3_lake_out_of_reach_during_a_tick_neither_resolves_nor_sends(
    s3_env: S3Server,
    demo_gateway: GatewayThread,
    instance: dg.DagsterInstance,
    hook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = s3_pipeline(demo_gateway, Lake(f"s3://{s3_env.new_bucket()}/v6/lake"), instance)
    defs = alerting(pipeline, hook)
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    failures = Sensor(reconciliation_failure_sensor, defs, pipeline.instance)
    failures.tick()
    key = _opened(pipeline, hook, sensor)
    before = sensor.shared
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # server gone
    said = sensor.tick()
    _unchanged(sensor, before, said, hook, "cannot reach the object store", "AWS_ENDPOINT_URL")
    # The failure sensor needs no lake to read run outcomes: it still works.
    assert failures.tick().startswith("nothing new")

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint)  # back
    said = sensor.tick()
    assert len(hook.received) == 1, titles(hook)
    assert AlertCursor.from_json(sensor.shared).state.open(IncidentKind.NAKED) is not None
    _close_the_legs(pipeline, key)
    run_windows(defs, key, instance=pipeline.instance)
    sensor.tick()
    assert len(hook.received) == 2, titles(hook)
    assert "RESOLVED" in titles(hook)[1].upper()
