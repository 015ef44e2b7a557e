"""The code location as Dagster loads it, and the schedule's decisions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from v6_pipeline.definitions import defs as load_defs
from v6_pipeline.defs.partitions import (
    WINDOW,
    last_closed_window,
    partitions_start,
    validate_key,
    window_key,
)
from v6_pipeline.defs.resources import ReconciliationSettings, resources_from_env
from v6_pipeline.defs.schedules import reconciliation_schedule
from v6_pipeline.lake import Lake, schemas
from v6_pipeline.lake.schemas import polars_schema

ASSETS = {"ib_position_snapshot", "delta_latest_positions", "position_discrepancies"}


defs = load_defs()
window_partitions = defs.resolve_job_def("reconciliation_job").partitions_def


def test_defs_load_and_name_what_users_rely_on() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS
    for key in ASSETS:
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == "reconciliation"
        assert node.partitions_def == window_partitions
        assert node.description
    checks = {k.name: k for k in graph.asset_check_keys}
    assert set(checks) == {
        "no_naked_positions",
        "no_positions_missing_from_delta",
        "positions_match_ib",
        "positions_are_fresh",
        "delta_accounts_are_managed",
        "position_stream_is_alive",
    }
    naked = graph.get_check_spec(checks["no_naked_positions"])
    assert naked.blocking
    assert defs.resolve_job_def("reconciliation_job").executor_def is dg.in_process_executor
    assert defs.resolve_schedule_def("reconciliation_schedule").cron_schedule == "*/5 * * * *"
    assert window_partitions.cron_schedule == "*/5 * * * *"
    assert window_partitions.timezone == "UTC"


def dagster_validate(**env: str) -> subprocess.CompletedProcess[str]:
    """`dagster definitions validate` on the code location, as Dagster loads it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "v6_pipeline.definitions",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "DAGSTER_HOME": "", **env},
    )


def test_the_dagster_cli_loads_the_module() -> None:
    proc = dagster_validate()
    assert proc.returncode == 0, proc.stdout + proc.stderr


class TestSchedule:
    def test_targets_the_window_that_just_closed(self) -> None:
        now = datetime.now(UTC)
        tick = last_closed_window(now) + WINDOW + timedelta(seconds=3)
        with (
            dg.instance_for_test() as instance,
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as context,
        ):
            request = reconciliation_schedule(context)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == window_key(last_closed_window(tick))
        assert request.run_key == request.partition_key

    def test_skips_while_a_run_is_in_flight(self) -> None:
        job = defs.resolve_job_def("reconciliation_job")
        with dg.instance_for_test() as instance:
            instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime.now(UTC)
            ) as context:
                result = reconciliation_schedule(context)
        assert isinstance(result, dg.SkipReason)
        assert "still in flight" in result.skip_message

    def test_a_backfill_in_flight_does_not_cost_the_live_window(self) -> None:
        job = defs.resolve_job_def("reconciliation_job")
        with dg.instance_for_test() as instance:
            instance.create_run_for_job(
                job, status=dg.DagsterRunStatus.STARTED, tags={"dagster/backfill": "abc"}
            )
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime.now(UTC)
            ) as context:
                assert isinstance(reconciliation_schedule(context), dg.RunRequest)

    def test_a_finished_run_does_not_block(self) -> None:
        job = defs.resolve_job_def("reconciliation_job")
        with dg.instance_for_test() as instance:
            instance.create_run_for_job(job, status=dg.DagsterRunStatus.FAILURE)
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime.now(UTC)
            ) as context:
                assert isinstance(reconciliation_schedule(context), dg.RunRequest)


class TestPartitions:
    def test_the_windows_start_when_the_pipeline_first_ran(self, tmp_path: Path) -> None:
        """The fill a node shows counts the windows since the first snapshot: before it,
        the newest closed window; after it, that first window, however long ago."""
        now = datetime(2026, 12, 7, 14, 3, tzinfo=UTC)
        lake = Lake(tmp_path / "lake")
        assert partitions_start({}, first_run=lake.first_snapshot_window, now=now) == datetime(
            2026, 12, 7, 13, 55, tzinfo=UTC
        )
        first = datetime(2026, 11, 30, 9, 40, tzinfo=UTC)
        for window in (first + WINDOW, first):  # written out of order: the oldest counts
            lake.write_snapshot(
                pl.DataFrame(schema=polars_schema(schemas.IB_POSITION_SNAPSHOTS)),
                window_start=window,
                taken_at=window + WINDOW,
                accounts=["DU111"],
                duration_s=0.1,
            )
        assert partitions_start({}, first_run=lake.first_snapshot_window, now=now) == first
        env = {"V6_PARTITIONS_START": "2026-06-01T00:05:00Z"}
        assert partitions_start(env, first_run=lake.first_snapshot_window) == datetime(
            2026, 6, 1, 0, 5, tzinfo=UTC
        )

    def test_an_unreadable_lake_costs_only_the_fill(self, caplog) -> None:
        def broken() -> datetime | None:
            raise OSError("connection refused")

        now = datetime(2026, 12, 7, 14, 3, tzinfo=UTC)
        assert partitions_start({}, first_run=broken, now=now) == datetime(
            2026, 12, 7, 13, 55, tzinfo=UTC
        )
        assert "cannot read when the pipeline first ran (connection refused)" in caplog.text
        assert "V6_PARTITIONS_START" in caplog.text

    def test_start_is_configurable(self) -> None:
        def never() -> datetime | None:
            raise AssertionError("the setting wins: the lake is not read")

        assert partitions_start(
            {"V6_PARTITIONS_START": "2026-06-01T00:05:00Z"}, first_run=never
        ) == datetime(2026, 6, 1, 0, 5, tzinfo=UTC)
        with pytest.raises(ValueError, match="5-minute boundary"):
            partitions_start({"V6_PARTITIONS_START": "2026-06-01T00:03:00Z"}, first_run=never)
        with pytest.raises(ValueError, match="not an ISO time"):
            partitions_start({"V6_PARTITIONS_START": "yesterday"}, first_run=never)

    def test_keys_are_validated_where_users_type_them(self) -> None:
        newest = window_key(last_closed_window(datetime.now(UTC)))
        assert validate_key(newest, window_partitions) == newest
        with pytest.raises(ValueError, match="not a window key"):
            validate_key("2026-11-25 14:05", window_partitions)
        with pytest.raises(ValueError, match="5-minute boundary"):
            validate_key(
                newest[:-1] + "1" if newest[-1] != "1" else newest[:-1] + "2", window_partitions
            )
        with pytest.raises(ValueError, match="has not closed yet"):
            validate_key(
                window_key(last_closed_window(datetime.now(UTC)) + 2 * WINDOW), window_partitions
            )
        with pytest.raises(ValueError, match="before the first window"):
            validate_key("2001-01-01-00:00", window_partitions)


class TestSettings:
    def test_defaults(self) -> None:
        settings = ReconciliationSettings()
        assert settings.scope() == ("OPT",)
        assert settings.tolerance() == 0.001
        assert settings.stale_after() is None
        # Fills in flight (README): a live read settles 3 s, a critical candidate is
        # confirmed 5 s after the first snapshot.
        assert settings.settle() == timedelta(seconds=3)
        assert settings.confirm_after() == timedelta(seconds=5)

    def test_parsed_and_validated(self) -> None:
        settings = ReconciliationSettings(sec_types="opt, stk", abs_tol="0.5", stale_after_s="90")
        assert settings.scope() == ("OPT", "STK")
        assert settings.stale_after() == timedelta(seconds=90)
        assert ReconciliationSettings(sec_types="*").scope() is None
        with pytest.raises(ValueError, match="V6_ABS_TOL='lots' is not a number"):
            ReconciliationSettings(abs_tol="lots").tolerance()
        with pytest.raises(ValueError, match="V6_SEC_TYPES is empty"):
            ReconciliationSettings(sec_types=" , ").scope()

    @pytest.mark.parametrize(
        ("variable", "value", "says"),
        [
            ("V6_ABS_TOL", "inf", "V6_ABS_TOL='inf' must be a finite number"),
            ("V6_ABS_TOL", "nan", "V6_ABS_TOL='nan' must be a finite number"),
            ("V6_ABS_TOL", "1", "a whole contract or more"),
            ("V6_SEC_TYPES", "OPT,FOO", "V6_SEC_TYPES names FOO"),
            ("V6_STALE_AFTER_S", "inf", "V6_STALE_AFTER_S='inf' must be a finite number"),
            ("V6_STALE_AFTER_S", "1e300", "over ten years"),
            ("V6_IB_TIMEOUT_S", "0", "V6_IB_TIMEOUT_S='0' must be a finite number of seconds > 0"),
            ("V6_IB_PORT", "99999", "V6_IB_PORT=99999 is not a TCP port"),
            ("V6_IB_CLIENT_ID", "-1", "V6_IB_CLIENT_ID=-1"),
            ("V6_SETTLE_S", "90", "V6_SETTLE_S='90' is over 60 s"),
            ("V6_CONFIRM_AFTER_S", "-1", "V6_CONFIRM_AFTER_S='-1' must be a finite number"),
            ("V6_CONFIRM_AFTER_S", "soon", "V6_CONFIRM_AFTER_S='soon' is not a number"),
        ],
    )
    def test_settings_that_would_blind_the_check_fail_the_load(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValueError, match=re.escape(says)):
            load_defs()

    def test_a_large_tolerance_needs_the_override(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("V6_ABS_TOL", "2")
        monkeypatch.setenv("V6_ALLOW_LARGE_TOL", "1")
        with load_defs().resources["settings"].process_config_and_initialize_cm() as settings:
            assert settings.tolerance() == 2

    def test_an_empty_setting_that_means_off_is_off(self) -> None:
        resources = resources_from_env({"V6_ALERT_REMIND_S": "", "V6_STREAM_DEAD_AFTER_S": " "})
        assert resources["alerts"].get_settings().remind_after is None
        assert resources["settings"].stream_dead_after() is None
        defaults = resources_from_env({})
        assert defaults["alerts"].get_settings().remind_after == timedelta(hours=1)
        assert defaults["settings"].stream_dead_after() == timedelta(seconds=120)

    def test_set_variables_become_env_vars_and_unset_ones_keep_one_default(self) -> None:
        resources = resources_from_env({"V6_IB_PORT": "4001", "V6_LAKE_DIR": " "})
        assert resources["ib"].port == dg.EnvVar.int("V6_IB_PORT")
        assert resources["lake"].lake_dir == "data/lake"


def test_the_ui_load_shows_a_bad_setting_by_name() -> None:
    proc = dagster_validate(V6_SEC_TYPES="FOO")
    assert proc.returncode != 0
    assert "V6_SEC_TYPES names FOO" in proc.stdout + proc.stderr
