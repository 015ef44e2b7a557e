"""Each window's check result is its current one in Dagster's partition status."""

from __future__ import annotations

import dagster as dg

from v6_pipeline.defs.checks import ASSET, NAKED_CHECK
from v6_pipeline.defs.partitions import window_key
from v6_pipeline.run.runner import run_windows

from .support import Pipeline
from .test_windows import past, store_snapshots


def current_verdicts(instance: dg.DagsterInstance) -> dict[str, str]:
    """Per window: the naked check's status as the UI's Partitions tab counts it."""
    key = dg.AssetCheckKey(dg.AssetKey(ASSET), NAKED_CHECK)
    return {
        info.partition_key: info.latest_execution_status.value
        for info in instance.event_log_storage.get_asset_check_partition_info([key])
        if info.partition_key and info.is_current
    }


def test_a_range_records_each_windows_verdict_as_its_current_one(pipeline: Pipeline) -> None:
    windows = past(pipeline, 5, 4, 3)
    store_snapshots(pipeline, windows)
    keys = [window_key(w) for w in windows]
    run_windows(pipeline.defs, keys[0], keys[-1], instance=pipeline.instance)
    assert current_verdicts(pipeline.instance) == dict.fromkeys(keys, "FAILED")


def test_a_gap_keeps_the_judged_windows_verdicts_current(pipeline: Pipeline) -> None:
    gap, *good = past(pipeline, 12, 11, 10)
    store_snapshots(pipeline, good)
    run_windows(pipeline.defs, window_key(gap), window_key(good[-1]), instance=pipeline.instance)
    verdicts = current_verdicts(pipeline.instance)
    assert {k: verdicts.get(k) for k in map(window_key, good)} == dict.fromkeys(
        map(window_key, good), "FAILED"
    )
