"""The alert feed reads every run outcome once, in order, whatever the batch boundaries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.alerts.observations import RunFailed, RunSucceeded
from v6_pipeline.defs import alert_feed
from v6_pipeline.defs.alert_feed import JOB, FeedPosition, read_feed
from v6_pipeline.lake import Lake


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
