"""The alert feed reads every run outcome once, in order, whatever the batch boundaries;
reads a window's legs only when it can do so with certainty, and the lake not at all
when no legs are wanted."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from v6_pipeline.alerts.observations import RunFailed, RunSucceeded, WindowJudged
from v6_pipeline.defs import alert_feed
from v6_pipeline.defs.alert_feed import JOB, FeedPosition, LakeUnreadableError, read_feed
from v6_pipeline.defs.partitions import window_key, window_start
from v6_pipeline.defs.resources import LakeResource
from v6_pipeline.lake import Lake
from v6_pipeline.run.runner import run_windows

from .support import Pipeline
from .test_windows import past, store_snapshots


@dg.op
def ok() -> None: ...


@dg.job(name=JOB)
def job() -> None:
    ok()


def test_a_full_batch_of_one_outcome_never_skips_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alert_feed, "_BATCH", 5)  # as 201 failures with the real 200
    with dg.instance_for_test() as instance:
        for _ in range(6):  # six failures, then one success, all after the cursor
            instance.report_run_failed(instance.create_run_for_job(job))
        assert job.execute_in_process(instance=instance).success
        seen: list[object] = []
        position = FeedPosition(0, 0)
        for _ in range(5):
            found, position = read_feed(instance, Lake(tmp_path), position, now=datetime.now(UTC))
            seen.extend(found)
        assert sum(isinstance(o, RunFailed) for o in seen) == 6
        assert sum(isinstance(o, RunSucceeded) for o in seen) == 1
        assert isinstance(seen[-1], RunSucceeded)  # in the order they happened


def test_a_window_rewritten_since_its_materialization_is_read_not_refused(
    pipeline: Pipeline,
) -> None:
    # A re-judgment whose rows landed but whose materialization is not recorded yet (or
    # never will be: its process died): the table was written after the record, which
    # explains the difference. The feed reads on; it never stalls on that window.
    key = pipeline.newest_key()
    position = FeedPosition(0, 0)
    assert run_windows(pipeline.defs, key, instance=pipeline.instance).naked_check_passed is False
    rows = pipeline.lake.read_discrepancies(window_start=window_start(key))
    fewer = rows.filter(pl.col("type") == "NAKED_POSITION")
    assert 0 < fewer.height < rows.height
    pipeline.lake.write_discrepancies_of(fewer, window_starts=[window_start(key)])
    found, _ = read_feed(pipeline.instance, pipeline.lake, position, now=datetime.now(UTC))
    [judged] = [o for o in found if isinstance(o, WindowJudged)]
    assert [leg.type for leg in judged.legs] == ["NAKED_POSITION"] * fewer.height


def test_a_feed_without_legs_does_not_read_the_lake(pipeline: Pipeline, tmp_path: Path) -> None:
    # The failure and silence sensors: a lake out of reach must not silence them.
    key = pipeline.newest_key()
    run_windows(pipeline.defs, key, instance=pipeline.instance)
    nowhere = Lake(tmp_path / "no-lake-here")
    found, _ = read_feed(
        pipeline.instance, nowhere, FeedPosition(0, 0), now=datetime.now(UTC), legs=False
    )
    assert [type(o) for o in found] == [WindowJudged, RunSucceeded]
    with pytest.raises(LakeUnreadableError, match="V6_LAKE_DIR"):
        read_feed(pipeline.instance, nowhere, FeedPosition(0, 0), now=datetime.now(UTC))


def test_a_backfill_into_another_lake_does_not_stop_the_feed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # A backfill never pages, so its rows need not be read with certainty: one run by
    # hand against a test lake on this instance must not stall the alerts for good.
    key = pipeline.newest_key()
    run_windows(pipeline.defs, key, instance=pipeline.instance)
    other = Lake(tmp_path / "test-lake")
    shutil.copytree(pipeline.lake.lake_dir, other.lake_dir)
    old = past(pipeline, 6)
    store_snapshots(
        Pipeline(pipeline.defs, other, pipeline.instance, pipeline.gateway, pipeline.start), old
    )
    elsewhere = pipeline.with_resources(lake=LakeResource(lake_dir=other.lake_dir))
    run_windows(elsewhere, window_key(old[0]), instance=pipeline.instance)
    found, _ = read_feed(
        pipeline.instance, pipeline.lake, FeedPosition(0, 0), now=datetime.now(UTC)
    )
    assert [(o.window_key, o.live) for o in found if isinstance(o, WindowJudged)] == [
        (key, True),
        (window_key(old[0]), False),
    ]
