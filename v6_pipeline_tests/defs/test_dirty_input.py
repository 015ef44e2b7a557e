"""Ordinary dirt never hides a naked leg: each case through a real Dagster run against
the emulator and a real Delta table, where the demo's naked leg (DU222 conid 500004,
Delta -2, IB nothing) is written with one flaw. Each ends NAKED or in a failure that
names what to correct, never in "OK"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from v6_pipeline.defs.resources import IBGatewayResource, LakeResource
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.lake import Lake, schemas
from v6_pipeline.lake.paths import POSITION_UPDATES
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_FAILED, run_windows

from .support import Pipeline

NAKED = (pl.col("account") == "DU222") & (pl.col("conid") == 500004)


def _dirty_pipeline(pipeline: Pipeline, tmp_path: Path, dirt: Callable[[pl.DataFrame], pa.Table]):
    """The pipeline on a lake whose `position_updates` is the demo's, made dirty."""
    lake_dir = tmp_path / "dirty-lake"
    rows = demo_position_updates(datetime.now(UTC) - timedelta(minutes=1))
    write_deltalake(str(lake_dir / POSITION_UPDATES), dirt(rows))
    return pipeline.with_resources(lake=LakeResource(lake_dir=str(lake_dir))), Lake(lake_dir)


def _arrow(frame: pl.DataFrame) -> pa.Table:
    return frame.to_arrow().cast(schemas.POSITION_UPDATES)


@pytest.mark.parametrize(
    ("case", "dirt"),
    [
        (
            "sec_type written lower-case",
            lambda f: _arrow(
                f.with_columns(sec_type=pl.when(NAKED).then(pl.lit("opt")).otherwise("sec_type"))
            ),
        ),
        (
            "account with a trailing space",
            lambda f: _arrow(
                f.with_columns(account=pl.when(NAKED).then(pl.lit("DU222 ")).otherwise("account"))
            ),
        ),
        (
            "account lower-case",
            lambda f: _arrow(
                f.with_columns(account=pl.when(NAKED).then(pl.lit("du222")).otherwise("account"))
            ),
        ),
    ],
)
def test_an_identity_typo_in_delta_still_finds_the_naked_leg(
    pipeline: Pipeline, tmp_path: Path, case: str, dirt
) -> None:
    defs, _ = _dirty_pipeline(pipeline, tmp_path, dirt)
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)

    assert outcome.exit_code == EXIT_CRITICAL, case
    naked = outcome.discrepancies.filter(pl.col("type") == "NAKED_POSITION")
    assert naked.select("account", "conid").rows() == [("DU222", 500004)]


def test_a_lower_case_v6_accounts_judges_the_account(pipeline: Pipeline) -> None:
    defs = pipeline.with_resources(
        ib=IBGatewayResource(port=pipeline.gateway.port, timeout_s="2", accounts=" du222")
    )
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)

    assert outcome.exit_code == EXIT_CRITICAL
    assert set(outcome.discrepancies["account"]) == {"DU222"}


def test_an_account_in_v6_accounts_the_gateway_does_not_manage_fails_naming_both(
    pipeline: Pipeline,
) -> None:
    defs = pipeline.with_resources(
        ib=IBGatewayResource(port=pipeline.gateway.port, timeout_s="2", accounts="DU111,DU333")
    )
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)

    assert outcome.exit_code == EXIT_FAILED
    assert outcome.naked_check_passed is not True
    assert "V6_ACCOUNTS names DU333, which the gateway does not manage" in outcome.failure
    assert "the gateway manages DU111, DU222" in outcome.failure
    assert "Error" not in outcome.failure  # a sentence, not an exception's name
    assert outcome.discrepancies.is_empty()


def test_two_quantities_at_one_time_fail_the_run_naming_the_key(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    def tie(frame: pl.DataFrame) -> pa.Table:  # the leg at -2 and at 0, one timestamp
        closed = frame.filter(NAKED).with_columns(position=pl.lit(0.0))
        return _arrow(pl.concat([frame, closed]))

    defs, _ = _dirty_pipeline(pipeline, tmp_path, tie)
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)

    assert outcome.exit_code == EXIT_FAILED
    assert "account DU222 conid 500004 has two quantities, -2 and 0" in outcome.failure
    assert outcome.discrepancies.is_empty()


def test_a_boolean_position_column_fails_the_run_naming_it(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    def boolean(frame: pl.DataFrame) -> pa.Table:
        table = _arrow(frame)
        i = table.schema.get_field_index("position")
        return table.set_column(i, "position", pa.array([p != 0 for p in frame["position"]]))

    defs, _ = _dirty_pipeline(pipeline, tmp_path, boolean)
    outcome = run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)

    assert outcome.exit_code == EXIT_FAILED
    assert "column `position` is bool" in outcome.failure
