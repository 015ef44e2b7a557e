"""A failing window's failure names its legs; the columns name every type and severity."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from v6_pipeline.alerts.observations import RunFailed
from v6_pipeline.confirm import INFO, RESOLVED_IN_FLIGHT
from v6_pipeline.defs import metadata as md
from v6_pipeline.defs.alert_feed import JOB, FeedPosition, read_feed
from v6_pipeline.defs.checks import NAKED_CHECK, naked_failure, window_verdicts
from v6_pipeline.lake import Lake, schemas
from v6_pipeline.reconcile import DiscrepancyType, Severity

WINDOW = "2026-12-07-14:00"
SENTENCE = (
    "DU222 SPY 2026-12-18 580 P (conid 500004): Delta Lake holds -2 but IB reports none "
    "(confirmed at 14:05:13 UTC)."
)


def naked_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {"type": ["NAKED_POSITION"], "details": [SENTENCE]},
    )


def _verdicts() -> list:
    unmanaged = pl.DataFrame(schema={"account": pl.String})
    return window_verdicts(WINDOW, naked_rows(), unmanaged, None, full=False)


def test_the_failure_of_a_naked_window_opens_with_its_legs() -> None:
    failure = naked_failure(WINDOW, _verdicts())
    assert failure is not None
    assert failure.description == f"window {WINDOW}: 1 naked position(s): {SENTENCE}"
    assert naked_failure(WINDOW, [v for v in _verdicts() if v.check != NAKED_CHECK]) is None


@dg.op
def judge_naked() -> None:
    failure = naked_failure(WINDOW, _verdicts())
    assert failure is not None
    raise failure


@dg.job(name=JOB)
def naked_job() -> None:
    judge_naked()


def test_the_run_fails_with_the_legs_and_the_sensors_take_it_for_the_verdict(
    tmp_path,
) -> None:
    """The step's failure (the run page's banner) is the legs' sentence; the failure
    sensor does not page it as a pipeline failure: the naked incident covers it."""
    with dg.instance_for_test() as instance:
        started = datetime.now(UTC)
        result = naked_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        [event] = [e for e in result.all_events if e.is_step_failure]
        user = event.step_failure_data.user_failure_data
        assert user is not None
        assert user.description.startswith(f"window {WINDOW}: 1 naked position(s): DU222 SPY")
        observations, _ = read_feed(
            instance, Lake(tmp_path / "lake"), FeedPosition(0, 0), now=started, legs=False
        )
        assert not [o for o in observations if isinstance(o, RunFailed)], observations


def test_the_columns_name_every_type_and_severity() -> None:
    columns = {
        c.name: c.description for c in md.column_schema(schemas.POSITION_DISCREPANCIES).columns
    }
    for value in [*DiscrepancyType, RESOLVED_IN_FLIGHT]:
        assert value in columns["type"], columns["type"]
    for value in [*Severity, INFO]:
        assert value in columns["severity"], columns["severity"]
    assert "never alerted" in columns["severity"]
