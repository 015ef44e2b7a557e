"""The alert sensors on a real instance: real runs of the real job against the emulator
and Delta tables, ticks with the cursor carried, alerts received by a real HTTP server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from v6_pipeline.alerts.ledger import Ledger
from v6_pipeline.defs.partitions import window_key, window_start
from v6_pipeline.defs.resources import AlertsResource, IBGatewayResource
from v6_pipeline.defs.sensors import (
    discrepancy_alert_sensor,
    reconciliation_failure_sensor,
    reconciliation_silence_sensor,
)
from v6_pipeline.run.runner import run_windows
from v6_pipeline_tests.alerts.support import Webhook, webhook

from .support import Pipeline
from .test_windows import past, store_snapshots


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook() as received:
        yield received


class Sensor:
    """One sensor ticked as the daemon would, its cursor carried from tick to tick."""

    def __init__(self, sensor: dg.SensorDefinition, defs: dg.Definitions, instance) -> None:
        self.sensor, self.defs, self.instance = sensor, defs, instance
        self.cursor: str | None = None
        self.said: list[str] = []

    def tick(self) -> str:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.defs.resources
        )
        data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        self.said.append(data.skip_message or "")
        return self.said[-1]

    @property
    def shared(self) -> str | None:
        """The alert state every evaluator of this sensor shares (its ledger's text)."""
        return Ledger(self.instance, self.sensor.name).read()


def alerting(pipeline: Pipeline, hook: Webhook, **settings: str) -> dg.Definitions:
    return pipeline.with_resources(alerts=AlertsResource(urls=hook.apprise_url, **settings))


def titles(hook: Webhook) -> list[str]:
    return [body["title"] for body in hook.received]


def delta_row(conid: int, position: float, at: datetime, account: str = "DU222") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account": [account],
            "conid": [conid],
            "symbol": ["SPY"],
            "sec_type": ["OPT"],
            "position": [position],
            "timestamp": [at],
        }
    )


def test_a_naked_set_pages_once_then_on_change_then_resolved(
    pipeline: Pipeline, hook: Webhook
) -> None:
    defs = alerting(pipeline, hook)
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    sensor.tick()  # the first tick, before anything was judged
    key = pipeline.newest_key()
    for _ in range(5):  # the same naked leg, judged live five times
        run_windows(defs, key, instance=pipeline.instance)
        sensor.tick()
    assert len(hook.received) == 1, titles(hook)
    assert "CRITICAL" in titles(hook)[0].upper()
    body = hook.received[0]["message"]
    assert "DU222" in body
    assert "NAKED: DU222 SPY 2026-12-18 580 P" in body
    assert "/runs/" in body

    taken = pipeline.lake.read_snapshot(window_start=window_start(key)).taken_at
    pipeline.lake.append_position_updates(delta_row(777001, -1.0, taken - timedelta(minutes=1)))
    run_windows(defs, key, instance=pipeline.instance)
    sensor.tick()
    assert len(hook.received) == 2, titles(hook)  # one leg added: one more alert

    closes = pl.concat([delta_row(c, 0.0, taken - timedelta(seconds=30)) for c in (500004, 777001)])
    pipeline.lake.append_position_updates(closes)
    run_windows(defs, key, instance=pipeline.instance)
    sensor.tick()
    assert len(hook.received) == 3, titles(hook)
    assert "RESOLVED" in titles(hook)[2].upper()
    assert sensor.said[-1].startswith("alerted: resolved naked-"), sensor.said[-1]
    assert " has none of its legs) → 1 sink delivered" in sensor.said[-1]
    assert sensor.said[-2].startswith("alerted: changed naked-"), sensor.said[-2]
    assert "(2 legs) → 1 sink delivered" in sensor.said[-2]
    assert sensor.said[2].startswith("nothing new (1 incident(s) open: naked-"), sensor.said[2]
    assert sensor.said[1].startswith("alerted: open naked-"), sensor.said[1]
    assert "(1 leg) → 1 sink delivered" in sensor.said[1]
    assert sensor.said[0] == "nothing new (no incident open)"


def test_a_backfill_of_old_windows_never_pages(pipeline: Pipeline, hook: Webhook) -> None:
    defs = alerting(pipeline, hook)
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    sensor.tick()
    windows = past(pipeline, 5, 4, 3)
    store_snapshots(pipeline, windows)
    outcome = run_windows(
        defs, window_key(windows[0]), window_key(windows[-1]), instance=pipeline.instance
    )
    assert outcome.naked_check_passed is False  # naked in every window, yet:
    said = sensor.tick()
    assert "4 new observation(s)" in said  # three windows and the run
    assert "backfills never page" in said
    assert said.startswith("nothing new (no incident open); backfill run "), said
    assert hook.received == []


def test_failing_runs_page_once_per_cause_and_resolve(pipeline: Pipeline, hook: Webhook) -> None:
    defs = alerting(pipeline, hook)
    down = defs.resources | {"ib": IBGatewayResource(port=1, timeout_s="0.5")}
    broken = pipeline.with_resources(**down)
    sensor = Sensor(reconciliation_failure_sensor, defs, pipeline.instance)
    sensor.tick()
    key = pipeline.newest_key()
    for _ in range(6):
        assert run_windows(broken, key, instance=pipeline.instance).exit_code == 1
        sensor.tick()
    assert len(hook.received) == 1, titles(hook)
    assert "Cannot reach IB Gateway/TWS at 127.0.0.1:1" in hook.received[0]["message"]
    assert re.match(
        r"alerted: open pipeline-\w+ \(\w+; 1 failed run\(s\)\) → 1 sink delivered",
        sensor.said[1],
    ), sensor.said[1]
    assert sensor.said[2].startswith("nothing new (1 incident(s) open: pipeline-")
    assert "6" in hook.received[0]["message"]  # how many runs failed, or it said it later
    run_windows(defs, key, instance=pipeline.instance)  # fails on the naked check only
    sensor.tick()
    assert len(hook.received) == 2, titles(hook)
    assert "RESOLVED" in titles(hook)[1].upper()


def test_a_failure_while_the_sensor_starts_is_still_reported(
    pipeline: Pipeline, hook: Webhook
) -> None:
    defs = alerting(pipeline, hook)
    broken = pipeline.with_resources(ib=IBGatewayResource(port=1, timeout_s="0.5"))
    run_windows(broken, pipeline.newest_key(), instance=pipeline.instance)
    Sensor(reconciliation_failure_sensor, defs, pipeline.instance).tick()  # its first tick
    assert len(hook.received) == 1, titles(hook)


def test_an_ib_failure_inside_a_quiet_window_pages_only_if_it_outlasts_it(
    pipeline: Pipeline, hook: Webhook
) -> None:
    now = datetime.now(UTC)
    end = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (end - now).total_seconds() < 5:  # too close to the minute to fail inside it
        end += timedelta(minutes=1)
    quiet = f"{(now - timedelta(minutes=10)):%H:%M}-{end:%H:%M} UTC"
    defs = alerting(pipeline, hook, quiet_windows=quiet)
    # An IB failure that is not retried (a transient one is retried through the quiet
    # window: test_quiet_retry.py), so the run fails inside it.
    pipeline.gateway.set_faults(["client-id-in-use"])
    broken = pipeline.with_resources(alerts=defs.resources["alerts"])
    sensor = Sensor(reconciliation_failure_sensor, defs, pipeline.instance)
    sensor.tick()
    run_windows(broken, pipeline.newest_key(), instance=pipeline.instance)
    sensor.tick()
    assert hook.received == []  # IB's nightly reset does not page
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1)
    run_windows(broken, pipeline.newest_key(), instance=pipeline.instance)
    sensor.tick()
    assert len(hook.received) == 1, titles(hook)


def test_an_open_incident_is_reminded_after_the_interval(pipeline: Pipeline, hook: Webhook) -> None:
    defs = alerting(pipeline, hook, remind_s="2")
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    sensor.tick()
    run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    sensor.tick()
    sensor.tick()
    assert len(hook.received) == 1
    time.sleep(2.5)
    sensor.tick()
    assert len(hook.received) == 2, titles(hook)
    assert "remind" in (titles(hook)[1] + hook.received[1]["message"]).lower()
    assert re.fullmatch(
        r"nothing new \(1 incident\(s\) open: naked-\S+, next reminder \d\d:\d\d UTC\)",
        sensor.said[2],
    ), sensor.said[2]
    assert re.match(r"alerted: reminder naked-\S+ \(1 leg\) → 1 sink delivered", sensor.said[3])


def test_silence_pages_when_nothing_is_judged(pipeline: Pipeline, hook: Webhook) -> None:
    defs = alerting(pipeline, hook, silence_s="2", heartbeat_url=hook.http_url)
    sensor = Sensor(reconciliation_silence_sensor, defs, pipeline.instance)
    sensor.tick()
    assert hook.received == []  # no alert for a history that never existed
    time.sleep(2.5)
    sensor.tick()
    assert len(hook.received) == 1, titles(hook)
    assert "has not judged a window" in hook.received[0]["message"]
    assert ("GET", "/ping/abc") in hook.requests  # the dead-man's switch
    assert re.fullmatch(
        r"alerted: open silence-\S+ \(no window judged for 0 min\) → 1 sink delivered; "
        r"heartbeat pinged",
        sensor.said[-1],
    ), sensor.said[-1]


def test_without_a_sink_a_tick_says_where_the_alert_went(pipeline: Pipeline) -> None:
    defs = pipeline.with_resources(alerts=AlertsResource())
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    said = sensor.tick()
    assert re.fullmatch(
        r"alerted: open naked-\S+ \(1 leg\) → no sink set \(V6_ALERT_URLS\): log and "
        r"alert_log only; \d new observation\(s\)",
        said,
    ), said


def test_every_alert_is_in_alert_log(pipeline: Pipeline, hook: Webhook) -> None:
    from v6_pipeline.alerts import log as alert_log

    defs = alerting(pipeline, hook)
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    sensor.tick()
    run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    sensor.tick()
    rows = alert_log.read(pipeline.lake.lake_dir)
    assert set(rows["status"]) >= {"raised", "delivered"}
