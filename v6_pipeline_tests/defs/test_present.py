"""At a glance = now: the checks show the newest live window, and runs of past windows
(backfills, re-runs) leave them as they were while each window keeps its own verdict."""

from __future__ import annotations

import asyncio

import dagster as dg
from dagster._core.loader import LoadingContextForTest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecord

from v6_pipeline.defs import checks
from v6_pipeline.defs.assets import VERDICT_TAG
from v6_pipeline.defs.partitions import window_key
from v6_pipeline.defs.present import ORIGIN, RESTATED
from v6_pipeline.run.runner import EXIT_CRITICAL, run_windows

from .support import Pipeline
from .test_windows import past, store_snapshots, window_metadata

CHECKS = [spec.name for spec in checks.check_specs()]


def shown(instance: dg.DagsterInstance, check: str) -> tuple[str, dict[str, object]] | None:
    """What the lineage node and the Checks tab show for `check`: the UI's own resolver
    (`AssetCheck.executionForLatestMaterialization`): the status and metadata of the
    newest execution when it targets the asset's newest materialization; else None
    ("not evaluated")."""

    async def resolve() -> tuple[str, dict[str, object]] | None:
        context = LoadingContextForTest(instance)
        key = dg.AssetCheckKey(dg.AssetKey(checks.ASSET), check)
        record = await AssetCheckExecutionRecord.gen(context, key)
        if record is None or not await record.targets_latest_materialization(context):
            return None
        status = await record.resolve_status(context)
        evaluation = record.evaluation
        metadata = getattr(evaluation, "metadata", {}) or {}
        return status.value, {k: v.value for k, v in metadata.items()}

    return asyncio.run(resolve())


def at_a_glance(instance: dg.DagsterInstance) -> dict[str, str | None]:
    return {name: (found[0] if (found := shown(instance, name)) else None) for name in CHECKS}


def test_the_checks_are_not_partitioned() -> None:
    """A partitioned check rolls up as failed while any window's current result failed:
    the first naked window ever would keep the node red for good."""
    assert all(spec.partitions_def is None for spec in checks.check_specs())


def test_a_backfill_with_a_naked_window_and_a_gap_leaves_the_present_as_it_was(
    pipeline: Pipeline,
) -> None:
    live = run_windows(pipeline.defs, pipeline.newest_key(), instance=pipeline.instance)
    assert live.exit_code == EXIT_CRITICAL  # the demo book's naked leg, now
    before = at_a_glance(pipeline.instance)
    assert before[checks.NAKED_CHECK] == "FAILED"
    assert before[checks.ACCOUNTS_CHECK] == "SUCCEEDED"

    gap, *judged = past(pipeline, 9, 8, 7)
    store_snapshots(pipeline, judged)
    backfill = run_windows(
        pipeline.defs, window_key(gap), window_key(judged[-1]), instance=pipeline.instance
    )
    assert window_key(gap) in (backfill.failure or "")
    assert at_a_glance(pipeline.instance) == before
    for name in CHECKS:
        found = shown(pipeline.instance, name)
        assert found is not None
        assert found[1][ORIGIN] == live.run_id  # the live run's judgment, re-stated
        assert found[1][RESTATED] == backfill.run_id
    # Each past window keeps its own verdict, on its own partition and in the runs list.
    for window in judged:
        metadata = window_metadata(pipeline.instance, checks.ASSET, window_key(window))
        assert str(metadata["verdict"]).startswith("NAKED: 1 naked position(s): ")
    run = pipeline.instance.get_run_by_id(backfill.run_id)
    assert run is not None
    assert run.tags[VERDICT_TAG] == "naked in 2 of 2"

    # A re-run of one past window, and a second backfill: the same present, from the
    # same live run.
    run_windows(pipeline.defs, window_key(judged[0]), instance=pipeline.instance)
    run_windows(
        pipeline.defs, window_key(judged[0]), window_key(judged[-1]), instance=pipeline.instance
    )
    assert at_a_glance(pipeline.instance) == before
    found = shown(pipeline.instance, checks.NAKED_CHECK)
    assert found is not None
    assert found[1][ORIGIN] == live.run_id


def test_before_any_live_window_a_backfill_states_no_present(pipeline: Pipeline) -> None:
    windows = past(pipeline, 6, 5)
    store_snapshots(pipeline, windows)
    run_windows(
        pipeline.defs, window_key(windows[0]), window_key(windows[-1]), instance=pipeline.instance
    )
    # Never a verdict the past gave: not evaluated, or skipped.
    assert set(at_a_glance(pipeline.instance).values()) <= {None, "SKIPPED"}


def test_while_a_live_run_is_judging_nothing_older_is_restated(pipeline: Pipeline) -> None:
    """A verdict logged after a live run started would be shown in place of its
    judgment: while one is in flight, a backfill re-states nothing."""
    live = run_windows(pipeline.defs, pipeline.newest_key(), instance=pipeline.instance)
    job = pipeline.defs.resolve_job_def("reconciliation_job")
    in_flight = pipeline.instance.create_run_for_job(
        job,
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": pipeline.newest_key()},
    )
    planned = pipeline.instance.get_records_for_run(
        in_flight.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
    ).records
    assert planned, "the in-flight run planned its checks"
    windows = past(pipeline, 4, 3)
    store_snapshots(pipeline, windows)
    backfill = run_windows(
        pipeline.defs, window_key(windows[0]), window_key(windows[-1]), instance=pipeline.instance
    )
    for name in CHECKS:
        found = shown(pipeline.instance, name)
        assert found is None or found[1].get(ORIGIN) != live.run_id, name
    evaluations = pipeline.instance.get_records_for_run(
        backfill.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    assert evaluations == []
