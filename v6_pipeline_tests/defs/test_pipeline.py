"""The Dagster pipeline end to end: real instance, real emulator, real Delta tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from v6_pipeline.defs.assets import NAKED_CHECK
from v6_pipeline.defs.partitions import WINDOW, window_key, window_start
from v6_pipeline.defs.resources import IBGatewayResource, LakeResource
from v6_pipeline.ib.snapshot import take_snapshot
from v6_pipeline.lake import Lake
from v6_pipeline.reconcile import reconcile
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_FAILED, EXIT_OK, run_windows
from v6_pipeline_tests.support import DEMO

from .support import Pipeline

ALL_TYPES = {"NAKED_POSITION", "MISSING_FROM_DELTA", "POSITION_MISMATCH", "STALE_DATA"}


def updates_matching_ib(now: datetime) -> pl.DataFrame:
    """A position log that agrees with the demo portfolio exactly."""
    return pl.DataFrame(
        {
            "account": [p.account for p in DEMO.positions],
            "conid": [p.conid for p in DEMO.positions],
            "symbol": [p.symbol for p in DEMO.positions],
            "sec_type": [p.sec_type for p in DEMO.positions],
            "position": [float(p.position) for p in DEMO.positions],
            "timestamp": [now - timedelta(minutes=30)] * len(DEMO.positions),
        }
    )


def test_clean_book_succeeds(pipeline: Pipeline, tmp_path) -> None:
    clean = Lake(tmp_path / "clean")
    clean.append_position_updates(updates_matching_ib(datetime.now(UTC)))
    defs = pipeline.with_resources(lake=LakeResource(lake_dir=str(tmp_path / "clean")))
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    assert outcome.success
    assert outcome.naked_check_passed is True
    assert outcome.exit_code == EXIT_OK
    assert outcome.discrepancies.is_empty()


def test_naked_position_fails_the_run_and_rows_are_written(pipeline: Pipeline) -> None:
    key = pipeline.newest_key()
    outcome = run_windows(pipeline.defs, key, instance=pipeline.instance)
    assert not outcome.success
    assert outcome.naked_check_passed is False
    assert outcome.exit_code == EXIT_CRITICAL
    assert outcome.failure is None  # the check failed the run, nothing else
    stored = pipeline.lake.read_discrepancies(window_start=window_start(key))
    assert set(stored["type"]) == ALL_TYPES
    naked = stored.filter(pl.col("type") == "NAKED_POSITION")
    assert naked.select("account", "conid").rows() == [("DU222", 500004)]
    # The closed-to-0 leg and the out-of-scope stock raise nothing.
    assert 500005 not in stored["conid"].to_list()
    assert 265598 not in stored["conid"].to_list()

    evaluation = next(
        e
        for e in pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("position_discrepancies"), NAKED_CHECK)]
        ).values()
    ).event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.metadata["naked_count"].value == 1
    assert "500004" in evaluation.metadata["naked_positions"].value


def test_materialization_metadata_tells_the_story(pipeline: Pipeline) -> None:
    run_windows(pipeline.defs, pipeline.newest_key(), instance=pipeline.instance)
    event = pipeline.instance.get_latest_materialization_event(
        dg.AssetKey("position_discrepancies")
    )
    meta = event.asset_materialization.metadata
    assert meta["dagster/row_count"].value == 4
    assert meta["naked_position_count"].value == 1
    assert meta["missing_from_delta_count"].value == 1
    assert meta["ib_open_positions"].value == 4  # OPT legs with a quantity
    assert "NAKED" in meta["discrepancies"].value
    columns = {c.name: c for c in meta["dagster/column_schema"].value.columns}
    assert "person on call" in columns["details"].description
    snap = pipeline.instance.get_latest_materialization_event(dg.AssetKey("ib_position_snapshot"))
    snap_meta = snap.asset_materialization.metadata
    assert snap_meta["dagster/row_count"].value == len(DEMO.positions)
    assert snap_meta["source"].value == "live snapshot"
    assert snap_meta["accounts"].value == ["DU111", "DU222"]


def test_rematerializing_a_window_reuses_its_snapshot_and_never_duplicates(
    pipeline: Pipeline,
) -> None:
    key = pipeline.newest_key()
    first = run_windows(pipeline.defs, key, instance=pipeline.instance)
    served = len(pipeline.gateway.snapshots)
    pipeline.gateway.set_faults(["connectivity-lost"])  # IB is not asked again
    second = run_windows(pipeline.defs, key, instance=pipeline.instance)
    assert len(pipeline.gateway.snapshots) == served
    assert second.naked_check_passed is False
    stored = pipeline.lake.read_discrepancies(window_start=window_start(key))
    assert stored.height == 4
    assert second.discrepancies.equals(first.discrepancies)


def test_backfill_of_older_windows_reproduces_their_stored_results(pipeline: Pipeline) -> None:
    newest = window_start(pipeline.newest_key())
    w1, w2 = newest - 3 * WINDOW, newest - 2 * WINDOW
    taken = {w: w + WINDOW + timedelta(seconds=2) for w in (w1, w2)}
    answer = take_snapshot(pipeline.gateway.host, pipeline.gateway.port, 606, timeout_s=5)
    for w in (w1, w2):
        pipeline.lake.write_snapshot(
            answer.positions,
            window_start=w,
            taken_at=taken[w],
            accounts=answer.accounts,
            duration_s=answer.duration_s,
        )
    # The naked leg was closed in Delta between the two snapshots; a later change
    # (after both) must not leak into either window.
    fix = pl.DataFrame(
        {
            "account": ["DU222", "DU111"],
            "conid": [500004, 500002],
            "symbol": ["SPY", "SPY"],
            "sec_type": ["OPT", "OPT"],
            "position": [0.0, 5.0],
            "timestamp": [taken[w2] - timedelta(seconds=60), datetime.now(UTC)],
        }
    )
    pipeline.lake.append_position_updates(fix)
    served = len(pipeline.gateway.snapshots)

    outcome = run_windows(pipeline.defs, window_key(w1), window_key(w2), instance=pipeline.instance)
    assert len(pipeline.gateway.snapshots) == served  # stored snapshots only
    assert outcome.exit_code == EXIT_CRITICAL
    by_window = {w: set(pipeline.lake.read_discrepancies(window_start=w)["type"]) for w in (w1, w2)}
    assert by_window[w1] == ALL_TYPES
    assert by_window[w2] == ALL_TYPES - {"NAKED_POSITION"}
    # Exactly what reconcile() says about the stored inputs.
    for w in (w1, w2):
        stored = pipeline.lake.read_snapshot(window_start=w)
        expected = reconcile(
            stored.positions,
            pipeline.lake.read_latest(as_of=stored.taken_at),
            as_of=stored.taken_at,
            stale_after=timedelta(days=1),
        )
        got = pipeline.lake.read_discrepancies(window_start=w).drop("window_start")
        assert got.sort("conid").equals(expected.sort("conid"))
    again = run_windows(pipeline.defs, window_key(w1), window_key(w2), instance=pipeline.instance)
    assert again.discrepancies.equals(outcome.discrepancies)


def test_a_never_snapshotted_window_fails_with_a_sentence(pipeline: Pipeline) -> None:
    old = window_start(pipeline.newest_key()) - 6 * WINDOW
    served = len(pipeline.gateway.snapshots)
    outcome = run_windows(pipeline.defs, window_key(old), instance=pipeline.instance)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.naked_check_passed is None
    assert "cannot be reconstructed" in outcome.failure
    assert window_key(old) in outcome.failure
    assert len(pipeline.gateway.snapshots) == served  # no live snapshot filed under it
    assert pipeline.lake.read_snapshot(window_start=old) is None


@pytest.mark.parametrize(
    "fault",
    [
        "no-position-end",
        "drop-mid-positions",
        "malformed-position",
        "client-id-in-use",
        "connectivity-lost",
        "delay:5",
    ],
)
def test_a_gateway_fault_fails_the_run_and_writes_nothing(pipeline: Pipeline, fault: str) -> None:
    key = pipeline.newest_key()
    pipeline.gateway.set_faults([fault])
    outcome = run_windows(pipeline.defs, key, instance=pipeline.instance)
    assert outcome.exit_code == EXIT_FAILED
    assert outcome.naked_check_passed is None  # never judged: no false NAKED alarm
    assert "IB" in outcome.failure
    assert pipeline.lake.read_snapshot(window_start=window_start(key)) is None
    assert pipeline.lake.read_discrepancies(window_start=window_start(key)).is_empty()
    # Once the gateway recovers, the same window can still be taken.
    pipeline.gateway.set_faults([])
    assert run_windows(pipeline.defs, key, instance=pipeline.instance).naked_check_passed is False


def test_gateway_not_running_fails_the_run(pipeline: Pipeline, tmp_path) -> None:
    defs = pipeline.with_resources(ib=IBGatewayResource(port=1, timeout_s="1"))
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    assert outcome.exit_code == EXIT_FAILED
    assert "Cannot reach IB Gateway/TWS at 127.0.0.1:1" in outcome.failure
