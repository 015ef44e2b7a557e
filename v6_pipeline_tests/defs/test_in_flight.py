"""Fills in flight: `v6 stream` writing to Delta a few seconds late, and the live run.

Everything is real: the emulator over a socket, the streamer (its flush interval is its
write lag: a close is stamped when IB pushes it and committed up to that long after),
the Delta lake and a Dagster run of the newest closed window. A close 1 s before the
snapshot, written 3 s late, is no NAKED (the settle sees it); with no settle it is a
NAKED candidate the confirming snapshot downgrades to RESOLVED_IN_FLIGHT; a leg IB
never had, and a close 10 s before the snapshot the streamer missed entirely, stay
NAKED and fail the run.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from v6_pipeline.confirm import INFO, RESOLVED_IN_FLIGHT
from v6_pipeline.defs.partitions import window_start
from v6_pipeline.defs.resources import ReconciliationSettings
from v6_pipeline.ib.protocol import Incoming
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_OK, Outcome, run_windows
from v6_pipeline_tests.defs.support import Pipeline
from v6_pipeline_tests.stream.support import (
    StreamerThread,
    caught_up,
    settings,
    wait_until,
    without_position,
)
from v6_pipeline_tests.support import DEMO

LAG_S = 3.0  # the streamer's write lag (its flush interval)
CLOSED = 2  # DEMO's index of DU111 QQQ 500 C (+2): the leg a strategy closes
CLOSED_KEY = (DEMO.positions[CLOSED].account, DEMO.positions[CLOSED].conid)
PIPELINE_CLIENT_ID = 606  # IBGatewayResource's default; the streamer is 607


def _run(pipeline: Pipeline, **reconciliation: str) -> tuple[Outcome, datetime]:
    """The newest closed window, with these settings; the run and its snapshot's time."""
    defs = pipeline.with_resources(
        settings=ReconciliationSettings(stale_after_s="", stream_dead_after_s="", **reconciliation)
    )
    key = pipeline.newest_key()
    outcome = run_windows(defs, key, instance=pipeline.instance)
    snap = pipeline.lake.read_snapshots(window_starts=[window_start(key)])
    (taken,) = snap.values()
    assert taken is not None, outcome.failure
    return outcome, taken.taken_at


def _close_then_run(
    pipeline: Pipeline, *, before_s: float, **reconciliation: str
) -> tuple[Outcome, datetime, datetime]:
    """Close the leg at IB `before_s` before the run's snapshot: (outcome, closed, taken_at).

    The gateway answers reqPositions `before_s` late (with its book as it is then), and
    the leg closes the moment the run's request arrives, so the close comes `before_s`
    before the answer completes, however long the run took to start."""
    pipeline.gateway.set_faults([f"delay:{before_s}"])
    closed: list[datetime] = []

    def close_when_asked() -> None:
        seen = len(pipeline.gateway.requests)
        wait_until(lambda: _asked_for_positions(pipeline, seen), 60, "the run's reqPositions")
        closed.append(datetime.now(UTC))
        pipeline.gateway.set_portfolio(without_position(DEMO, CLOSED))

    closer = threading.Thread(target=close_when_asked)
    closer.start()
    outcome, taken_at = _run(pipeline, **reconciliation)
    closer.join(5)
    return outcome, closed[0], taken_at


def _asked_for_positions(pipeline: Pipeline, seen: int) -> bool:
    return any(
        r.client_id == PIPELINE_CLIENT_ID and r.msg_id == Incoming.REQ_POSITIONS
        for r in pipeline.gateway.requests[seen:]
    )


def _row(outcome: Outcome, key: tuple[str, int]) -> dict | None:
    rows = outcome.discrepancies.filter((pl.col("account") == key[0]) & (pl.col("conid") == key[1]))
    return rows.row(0, named=True) if rows.height else None


@pytest.fixture
def streamer(pipeline: Pipeline, tmp_path) -> StreamerThread:
    """`v6 stream` with a 3 s write lag, caught up with IB (Delta repaired to IB's book)."""
    thread = StreamerThread(
        settings(pipeline.gateway, pipeline.lake.lake_dir, flush_s=LAG_S, heartbeat_s=1.0)
    ).start()
    caught_up(pipeline.lake.lake_dir, timeout=20)
    yield thread
    thread.stop()


def test_a_close_1s_before_the_snapshot_written_3s_late_is_no_naked_after_settling(
    pipeline: Pipeline, streamer: StreamerThread
) -> None:
    outcome, closed_at, taken_at = _close_then_run(
        pipeline, before_s=1.0, settle_s="3", confirm_after_s="5"
    )
    assert timedelta(seconds=0.9) < taken_at - closed_at < timedelta(seconds=LAG_S)
    assert outcome.exit_code == EXIT_OK, outcome.failure
    assert _row(outcome, CLOSED_KEY) is None  # Delta had the close by the time it was read
    assert outcome.discrepancies.is_empty()


def test_without_settling_the_same_close_is_resolved_in_flight_by_the_confirmation(
    pipeline: Pipeline, streamer: StreamerThread
) -> None:
    # A leg Delta holds open that IB never had: a real naked position, same window.
    pipeline.lake.append_position_updates(_open_leg_ib_never_had())
    outcome, closed_at, taken_at = _close_then_run(
        pipeline, before_s=1.0, settle_s="0", confirm_after_s="5"
    )
    assert taken_at - closed_at < timedelta(seconds=LAG_S)
    near_miss = _row(outcome, CLOSED_KEY)
    assert near_miss is not None
    assert (near_miss["type"], near_miss["severity"]) == (RESOLVED_IN_FLIGHT, INFO)
    assert near_miss["details"].startswith("NAKED_POSITION did not survive the confirming")
    real = _row(outcome, ("DU111", 599999))
    assert real is not None
    assert real["type"] == "NAKED_POSITION"
    assert outcome.exit_code == EXIT_CRITICAL  # the real one still fails the run
    confirming = pipeline.lake.read_snapshots(
        window_starts=[window_start(outcome.keys[0])], confirming=True
    )
    (second,) = confirming.values()
    assert second is not None
    assert second.taken_at - taken_at >= timedelta(seconds=5)  # V6_CONFIRM_AFTER_S
    # The window's page in the UI tells the story: both snapshot times, the near miss.
    event = pipeline.instance.get_latest_materialization_event(
        dg.AssetKey("position_discrepancies")
    )
    metadata = event.asset_materialization.metadata
    assert metadata["resolved_in_flight_count"].value == 1
    assert metadata["naked_position_count"].value == 1
    assert metadata["as_of"].value == taken_at.timestamp()
    assert metadata["confirmed_at"].value == second.taken_at.timestamp()


def test_a_close_10s_before_the_snapshot_the_streamer_missed_stays_naked(
    pipeline: Pipeline, streamer: StreamerThread
) -> None:
    streamer.stop()  # the streamer is down: the close never reaches Delta
    closed_at = datetime.now(UTC)
    pipeline.gateway.set_portfolio(without_position(DEMO, CLOSED))
    time.sleep(10)
    outcome, taken_at = _run(pipeline, settle_s="3", confirm_after_s="5")
    assert taken_at - closed_at >= timedelta(seconds=10)
    row = _row(outcome, CLOSED_KEY)
    assert row is not None
    assert row["type"] == "NAKED_POSITION"
    assert outcome.exit_code == EXIT_CRITICAL


def test_a_backfill_of_the_window_reproduces_the_confirmed_verdict(
    pipeline: Pipeline, streamer: StreamerThread
) -> None:
    # The streamer is down when the leg closes; it comes back between the two snapshots
    # and its repair row carries its own snapshot's time, after the first snapshot.
    streamer.stop()
    pipeline.gateway.set_portfolio(without_position(DEMO, CLOSED))
    key = pipeline.newest_key()
    result: list[tuple[Outcome, datetime]] = []
    live = threading.Thread(
        target=lambda: result.append(_run(pipeline, settle_s="0", confirm_after_s="4"))
    )
    live.start()
    window = [window_start(key)]
    wait_until(lambda: pipeline.lake.read_snapshots(window_starts=window)[window[0]] is not None)
    back = StreamerThread(settings(pipeline.gateway, pipeline.lake.lake_dir)).start()
    try:
        live.join(60)
    finally:
        back.stop()
    ((outcome, _),) = result
    assert _close_in_delta(pipeline)
    assert _row(outcome, CLOSED_KEY)["type"] == RESOLVED_IN_FLIGHT
    assert outcome.exit_code == EXIT_OK, outcome.failure
    # Re-judged later with IB down: both stored snapshots are judged again. Without the
    # confirming one, the repair row (stamped after the first snapshot) would make this
    # window NAKED in hindsight.
    pipeline.gateway.set_faults(["connectivity-lost"])
    again, _ = _run(pipeline, settle_s="0", confirm_after_s="4")
    assert again.exit_code == EXIT_OK, again.failure
    assert again.discrepancies.drop("details").equals(outcome.discrepancies.drop("details"))
    assert _row(again, CLOSED_KEY)["details"] == _row(outcome, CLOSED_KEY)["details"]


def _close_in_delta(pipeline: Pipeline) -> bool:
    latest = pipeline.lake.read_latest(as_of=datetime.now(UTC))
    rows = latest.filter((pl.col("account") == CLOSED_KEY[0]) & (pl.col("conid") == CLOSED_KEY[1]))
    return rows.height == 1 and rows["position"][0] == 0


def _open_leg_ib_never_had() -> pl.DataFrame:
    from v6_pipeline.lake.schemas import POSITION_UPDATES, polars_schema

    row = {
        "account": "DU111",
        "conid": 599999,
        "symbol": "SPY",
        "sec_type": "OPT",
        "right": "P",
        "strike": 500.0,
        "expiry": "20270115",
        "multiplier": "100",
        "currency": "USD",
        "position": -1.0,
        "avg_cost": None,
        "timestamp": datetime.now(UTC) - timedelta(minutes=3),
    }
    return pl.DataFrame([row], schema=polars_schema(POSITION_UPDATES))
