"""Every window tells its own truth: per-window metadata and verdicts, gaps, accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from v6_pipeline.defs.checks import ACCOUNTS_CHECK, NAKED_CHECK, STREAM_CHECK
from v6_pipeline.defs.partitions import WINDOW, window_key, window_start
from v6_pipeline.defs.present import RESTATED
from v6_pipeline.defs.resources import IBGatewayResource, LakeResource, ReconciliationSettings
from v6_pipeline.ib.gateway import Portfolio
from v6_pipeline.ib.snapshot import take_snapshot
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_FAILED, run_windows
from v6_pipeline.stream.status import StreamStatus, write_status
from v6_pipeline_tests.support import DEMO

from .support import Pipeline

PLOTTED = (
    "dagster/row_count",
    "naked_position_count",
    "missing_from_delta_count",
    "position_mismatch_count",
    "stale_data_count",
    "ib_open_positions",
    "delta_open_positions",
    "as_of",
)


def store_snapshots(pipeline: Pipeline, windows: list[datetime]) -> None:
    answer = take_snapshot(pipeline.gateway.host, pipeline.gateway.port, 606, timeout_s=5)
    for w in windows:
        pipeline.lake.write_snapshot(
            answer.positions,
            window_start=w,
            taken_at=w + WINDOW + timedelta(seconds=2),
            accounts=answer.accounts,
            duration_s=answer.duration_s,
        )


def past(pipeline: Pipeline, *ago: int) -> list[datetime]:
    newest = window_start(pipeline.newest_key())
    return [newest - n * WINDOW for n in ago]


def window_metadata(instance: dg.DagsterInstance, asset: str, key: str) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def naked_verdicts(instance: dg.DagsterInstance, run_id: str) -> list[bool]:
    """The run's own `no_naked_positions` results (a re-stated present is not its own)."""
    return [
        e.passed
        for e in check_evaluations(instance, run_id)
        if e.check_name == NAKED_CHECK and RESTATED not in e.metadata
    ]


def verdict_lines(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    """Each window's `verdict`, the first line of its partition page."""
    return {k: str(window_metadata(instance, "position_discrepancies", k)["verdict"]) for k in keys}


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    return [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]


def test_each_window_of_a_range_records_what_a_single_run_of_it_records(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    windows = past(pipeline, 5, 4, 3)
    store_snapshots(pipeline, windows)
    keys = [window_key(w) for w in windows]
    singles = {}
    for key in keys:
        run_windows(pipeline.defs, key, instance=pipeline.instance)
        singles[key] = {
            asset: window_metadata(pipeline.instance, asset, key)
            for asset in (
                "ib_position_snapshot",
                "delta_latest_positions",
                "position_discrepancies",
            )
        }
    outcome = run_windows(pipeline.defs, keys[0], keys[-1], instance=pipeline.instance)
    assert outcome.exit_code == EXIT_CRITICAL  # naked windows found, in the past too
    for key in keys:
        for asset, single in singles[key].items():
            ranged = window_metadata(pipeline.instance, asset, key)
            assert "windows" not in ranged  # never a range aggregate on a window
            for name in (*PLOTTED, "taken_at", "open_positions", "verdict", "failed_checks"):
                assert ranged.get(name) == single.get(name), (asset, key, name)
        verdict = window_metadata(pipeline.instance, "position_discrepancies", key)["verdict"]
        assert verdict.startswith("NAKED: 1 naked position(s): "), verdict
    # The checks tell the present: runs of past windows evaluate none of them.
    runs = pipeline.instance.get_runs()
    assert len(runs) == 4
    assert not [e for r in runs for e in check_evaluations(pipeline.instance, r.run_id)]
    assert pipeline.instance.get_run_by_id(outcome.run_id).tags["v6/verdict"] == "naked in 3 of 3"


def test_a_gap_in_a_range_fails_by_key_and_the_judged_windows_stay_judged(
    pipeline: Pipeline,
) -> None:
    gap, *good = past(pipeline, 12, 11, 10)
    store_snapshots(pipeline, good)
    outcome = run_windows(
        pipeline.defs, window_key(gap), window_key(good[-1]), instance=pipeline.instance
    )
    assert outcome.exit_code == EXIT_CRITICAL  # the judged windows are naked; the gap failed
    assert window_key(gap) in outcome.failure
    assert "cannot be reconstructed" in outcome.failure
    for w in good:
        assert not pipeline.lake.read_discrepancies(window_start=w).is_empty()
    assert pipeline.lake.read_discrepancies(window_start=gap).is_empty()
    status = get_and_update_asset_status_cache_value(
        pipeline.instance,
        dg.AssetKey("position_discrepancies"),
        pipeline.defs.resolve_job_def("reconciliation_job").partitions_def,
    )
    windows = pipeline.defs.resolve_job_def("reconciliation_job").partitions_def
    materialized = windows.deserialize_subset(status.serialized_materialized_partition_subset)
    failed = windows.deserialize_subset(status.serialized_failed_partition_subset)
    assert set(materialized.get_partition_keys()) == {window_key(w) for w in good}
    # A shell range plans each asset once (runner.PLANNED_SUBSET): Dagster then marks no
    # window of a failed range failed; the gap stays unmaterialized, named by the failure.
    assert set(failed.get_partition_keys()) == set()
    for w in good:
        metadata = window_metadata(pipeline.instance, "position_discrepancies", window_key(w))
        assert metadata["verdict"].startswith("NAKED: ")
    assert pipeline.instance.get_run_by_id(outcome.run_id).tags["v6/verdict"] == "naked in 2 of 2"


def test_the_run_log_names_each_naked_leg(pipeline: Pipeline) -> None:
    outcome = run_windows(pipeline.defs, pipeline.newest_key(), instance=pipeline.instance)
    errors = [
        e.user_message
        for e in pipeline.instance.all_logs(outcome.run_id)
        if e.level == 40 and e.dagster_event is None
    ]
    assert any("NAKED: DU222 SPY 2026-12-18 580 P" in m for m in errors), errors


def test_delta_latest_positions_stores_what_the_window_was_judged_against(
    pipeline: Pipeline,
) -> None:
    key = pipeline.newest_key()
    run_windows(pipeline.defs, key, instance=pipeline.instance)
    stored = pipeline.lake.read_delta_latest_of(window_starts=[window_start(key)])
    believed = stored[window_start(key)]
    snap = pipeline.lake.read_snapshot(window_start=window_start(key))
    assert set(believed["as_of"]) == {snap.taken_at}
    # Every open Delta position and every key IB reported, nothing else.
    latest = pipeline.lake.read_latest(as_of=snap.taken_at)
    wanted = latest.filter(
        (pl.col("position") != 0)
        | pl.struct("account", "conid").is_in(
            snap.positions.select(pl.struct("account", "conid")).to_series().implode()
        )
    )
    assert sorted(believed.select("account", "conid").rows()) == sorted(
        wanted.select("account", "conid").rows()
    )


def test_positions_in_accounts_ib_does_not_cover_are_never_naked(pipeline: Pipeline) -> None:
    du111 = Portfolio.of([p for p in DEMO.positions if p.account == "DU111"], ["DU111"])
    pipeline.gateway.set_portfolio(du111)
    outcome = run_windows(pipeline.defs, pipeline.newest_key(), instance=pipeline.instance)
    assert outcome.naked_check_passed is True  # DU222 was never asked about
    assert "DU222" not in set(outcome.discrepancies["account"])
    evaluation = next(
        iter(
            pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("position_discrepancies"), ACCOUNTS_CHECK)]
            ).values()
        )
    ).event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.metadata["unjudged_accounts"].value == ["DU222"]
    assert "V6_ACCOUNTS" in evaluation.description


def test_v6_accounts_narrows_the_judged_accounts(pipeline: Pipeline) -> None:
    defs = pipeline.with_resources(
        ib=IBGatewayResource(port=pipeline.gateway.port, timeout_s="2", accounts="DU111")
    )
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    assert set(outcome.discrepancies["account"]) == {"DU111"}
    assert outcome.naked_check_passed is True  # the naked leg is DU222's


def test_a_missing_lake_is_reported_before_anything_is_written(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    typo = tmp_path / "no-such-lake"
    defs = pipeline.with_resources(lake=LakeResource(lake_dir=str(typo)))
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)
    assert outcome.exit_code == EXIT_FAILED
    assert str(typo / "position_updates") in outcome.failure
    assert not typo.exists()


def stream_check(pipeline: Pipeline) -> dg.AssetCheckEvaluation:
    return next(
        iter(
            pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("position_discrepancies"), STREAM_CHECK)]
            ).values()
        )
    ).event.dagster_event.event_specific_data


def heartbeat(pipeline: Pipeline, at: datetime) -> None:
    write_status(
        pipeline.lake.lake_dir,
        StreamStatus(
            stream_id="s1",
            heartbeat_at=at,
            connected=True,
            since=at - timedelta(hours=1),
            last_event_at=at,
            last_write_at=at,
            rows_written=3,
            events=3,
            pending=0,
            reconnects=0,
            last_error=None,
            started_at=at - timedelta(hours=1),
            hostname="test",
            pid=1,
        ),
    )


def test_the_stream_check_follows_the_heartbeat_at_as_of(pipeline: Pipeline) -> None:
    key = pipeline.newest_key()
    run_windows(pipeline.defs, key, instance=pipeline.instance)
    assert stream_check(pipeline).passed is False  # no streamer ever ran here
    assert "v6 stream" in stream_check(pipeline).description
    heartbeat(pipeline, datetime.now(UTC))  # after as_of: does not count for this window
    run_windows(pipeline.defs, key, instance=pipeline.instance)
    assert stream_check(pipeline).passed is False
    taken = pipeline.lake.read_snapshot(window_start=window_start(key)).taken_at
    heartbeat(pipeline, taken - timedelta(seconds=20))
    run_windows(pipeline.defs, key, instance=pipeline.instance)
    assert stream_check(pipeline).passed is True
    off = pipeline.with_resources(
        settings=ReconciliationSettings.from_env({"V6_STREAM_DEAD_AFTER_S": ""})
    )
    run_windows(off, key, instance=pipeline.instance)
    assert stream_check(pipeline).metadata["status"].value.startswith("off")
