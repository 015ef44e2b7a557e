"""Exactly once across evaluators, ticks that say what they did, and a heartbeat that
stops while an alert reaches nobody: real runs, a real instance (opened twice, as two
processes do), real HTTP sinks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import dagster as dg
import pytest

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.alerts.ledger import Ledger
from v6_pipeline.alerts.tick import AlertCursor
from v6_pipeline.defs.resources import AlertsResource
from v6_pipeline.defs.sensors import (
    DISCREPANCY,
    discrepancy_alert_sensor,
    reconciliation_silence_sensor,
)
from v6_pipeline.run.runner import run_windows
from v6_pipeline_tests.alerts.support import Webhook, webhook

from .support import Pipeline
from .test_sensors import Sensor, alerting, titles


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook() as received:
        yield received


def raised(pipeline: Pipeline) -> list[tuple[str, str]]:
    rows = alert_log.read(pipeline.lake.lake_dir)
    return [
        (r["incident_id"], r["kind"]) for r in rows.iter_rows(named=True) if r["status"] == "raised"
    ]


def test_the_demo_then_the_daemon_page_once(pipeline: Pipeline, hook: Webhook) -> None:
    """`v6 demo --ui`: the demo ticks the sensor with a fresh cursor, then the daemon's
    first tick (a fresh cursor of its own) reads the same window: one page, not two."""
    defs = alerting(pipeline, hook)
    run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    demo = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    assert demo.tick().startswith("alerted: open naked-")
    second = dg.DagsterInstance.from_ref(pipeline.instance.get_ref())  # another process
    daemon = Sensor(discrepancy_alert_sensor, defs, second)
    said = daemon.tick()
    assert said.startswith("nothing new (1 incident(s) open: naked-"), said
    restarted = Sensor(discrepancy_alert_sensor, defs, second)  # the daemon restarted
    assert restarted.tick().startswith("nothing new")
    assert len(hook.received) == 1, titles(hook)
    assert [kind for _, kind in raised(pipeline)] == ["open"]


def test_two_evaluators_ticking_at_once_page_once(pipeline: Pipeline, hook: Webhook) -> None:
    """Two daemons on one instance tick the sensor at the same moment, round after
    round: every incident opens and resolves exactly once."""
    defs = alerting(pipeline, hook)
    instances = [pipeline.instance, dg.DagsterInstance.from_ref(pipeline.instance.get_ref())]
    evaluators = [Sensor(discrepancy_alert_sensor, defs, i) for i in instances]
    for evaluator in evaluators:
        evaluator.tick()  # the first ticks: nothing judged yet
    key = pipeline.newest_key()
    for _ in range(3):
        run_windows(defs, key, instance=pipeline.instance)
        start = threading.Barrier(2)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_tick_at, args=(e, start, errors)) for e in evaluators]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    said = [e.said[-1] for e in evaluators]
    assert len(hook.received) == 1, (titles(hook), said)
    assert [kind for _, kind in raised(pipeline)] == ["open"]
    # Each evaluator's cursor names the shared state and says what its tick did.
    for evaluator in evaluators:
        note = json.loads(evaluator.cursor or "")
        assert note["__class__"] == "AlertTick"
        assert note["state"] == Ledger(pipeline.instance, DISCREPANCY).key
        assert note["did"] == evaluator.said[-1]


def _tick_at(evaluator: Sensor, start: threading.Barrier, errors: list[BaseException]) -> None:
    start.wait()
    try:
        evaluator.tick()
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_an_evaluator_that_loses_the_write_decides_again_on_the_winners_state(
    pipeline: Pipeline, hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made certain: evaluator A has read the state and decided to page; before
    it writes, evaluator B ticks in full and pages. A's write is refused; it reads B's
    state, finds nothing new, and sends nothing."""
    defs = alerting(pipeline, hook)
    second = dg.DagsterInstance.from_ref(pipeline.instance.get_ref())
    a = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    b = Sensor(discrepancy_alert_sensor, defs, second)
    run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    swap = Ledger.swap
    between = [b.tick]

    def swap_after_b(ledger: Ledger, old: str | None, new: str) -> bool:
        if between:
            between.pop()()  # B ticks between A's read and A's write
        return swap(ledger, old, new)

    monkeypatch.setattr(Ledger, "swap", swap_after_b)
    said_a = a.tick()
    assert b.said[-1].startswith("alerted: open naked-"), b.said
    assert said_a.startswith("nothing new (1 incident(s) open: naked-"), said_a
    assert "another evaluator wrote the shared state first 1 time(s)" in said_a
    assert len(hook.received) == 1, titles(hook)
    assert [kind for _, kind in raised(pipeline)] == ["open"]


def test_a_state_kept_in_an_earlier_cursor_is_adopted_not_repeated(
    pipeline: Pipeline, hook: Webhook
) -> None:
    """An upgrade: the open incident lived in the daemon's cursor; the first tick takes
    it over into the shared state instead of paging it again."""
    defs = alerting(pipeline, hook)
    run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    sensor = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
    sensor.tick()
    ledger = Ledger(pipeline.instance, DISCREPANCY)
    state = AlertCursor.from_json(ledger.read())
    old = json.dumps(  # the earlier cursor: the state as strings inside a string
        {
            "position": state.position,
            "state": state.state.to_json(),
            "outbox": state.outbox.to_json(),
        }
    )
    other = dg.DagsterInstance.from_ref(pipeline.instance.get_ref())
    from dagster._core.storage.runs.schema import KeyValueStoreTable

    with other.run_storage.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(KeyValueStoreTable.delete().where(KeyValueStoreTable.c.key == ledger.key))
    upgraded = Sensor(discrepancy_alert_sensor, defs, other)
    upgraded.cursor = old
    assert upgraded.tick().startswith("nothing new (1 incident(s) open")
    assert len(hook.received) == 1, titles(hook)


def test_the_heartbeat_stops_while_an_alert_reaches_no_sink(pipeline: Pipeline) -> None:
    """Every sink down while a leg is naked: the dead-man's switch stops hearing from
    us; a sink back up delivers it and the pings resume."""
    with webhook() as monitor, webhook() as sink:
        with webhook() as down:
            pass  # its port is closed now: the only sink is down
        settings = {"urls": down.apprise_url, "heartbeat_url": monitor.http_url}
        defs = pipeline.with_resources(alerts=AlertsResource(**settings))
        naked = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
        silence = Sensor(reconciliation_silence_sensor, defs, pipeline.instance)
        assert silence.tick().endswith("heartbeat pinged")
        assert monitor.requests == [("GET", "/ping/abc")]

        run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
        said = naked.tick()
        assert " → 0 of 1 sinks delivered, 1 failing (json://127.0.0.1:" in said, said
        assert "1 delivery(ies) pending, next try" in said
        said = silence.tick()
        assert "heartbeat withheld: 1 alert(s) reached no sink, the oldest open naked-" in said
        assert monitor.requests == [("GET", "/ping/abc")]  # no second ping

        # Back up, on the same port: the retry delivers it, the pings resume.
        with webhook(hook=down):
            ledger = Ledger(pipeline.instance, DISCREPANCY)
            ledger.update(lambda text: _due_now(text))
            said = naked.tick()
            assert "retried earlier alerts: 1 delivered, 0 still failing" in said, said
            assert len(down.received) == 1
        assert silence.tick().endswith("heartbeat pinged")
        assert monitor.requests == [("GET", "/ping/abc")] * 2
        assert sink.received == []


def test_one_sink_delivering_is_enough_for_the_heartbeat(pipeline: Pipeline) -> None:
    """One of two sinks down: a person was told, the heartbeat goes on."""
    with webhook() as monitor, webhook() as up:
        with webhook() as down:
            pass
        urls = f"{down.apprise_url} {up.apprise_url}"
        defs = pipeline.with_resources(
            alerts=AlertsResource(urls=urls, heartbeat_url=monitor.http_url)
        )
        run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
        said = Sensor(discrepancy_alert_sensor, defs, pipeline.instance).tick()
        assert "→ 1 of 2 sinks delivered, 1 failing" in said, said
        said = Sensor(reconciliation_silence_sensor, defs, pipeline.instance).tick()
        assert said.endswith("heartbeat pinged"), said
        assert len(up.received) == 1


def _due_now(text: str | None) -> str:
    """The shared state with every pending delivery due at once (its retry time passed)."""
    from dataclasses import replace
    from datetime import UTC, datetime

    cursor = AlertCursor.from_json(text)
    now = datetime.now(UTC)
    due = tuple(replace(p, next_at=now) for p in cursor.outbox.pending)
    return replace(cursor, outbox=replace(cursor.outbox, pending=due)).to_json()
