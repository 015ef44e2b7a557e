"""Run retention: the rule as data, and the op on real instances, SQLite and PostgreSQL,
over real reconciliation runs made old by moving their creation time back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.runs.schema import RunsTable

from v6_pipeline.defs.partitions import window_key
from v6_pipeline.defs.resources import ReconciliationSettings, check_settings
from v6_pipeline.defs.retention import (
    RetentionPolicy,
    RetentionReport,
    RunFacts,
    RunRetentionResource,
    expires_at,
    prune_runs,
    run_retention_op,
)
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_OK, run_windows
from v6_pipeline_tests.defs.support import Pipeline
from v6_pipeline_tests.defs.test_windows import past, store_snapshots

S = dg.DagsterRunStatus
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
POLICY = RetentionPolicy(run_days=30, failed_days=180)
IN_FLIGHT = [s for s in S if s not in (S.SUCCESS, S.FAILURE, S.CANCELED)]


def facts(status: S, days_old: float, *, failed_check: bool = False) -> RunFacts:
    return RunFacts("r", NOW - timedelta(days=days_old), status, failed_check)


def expired(run: RunFacts, now: datetime = NOW) -> bool:
    at = expires_at(run, POLICY)
    return at is not None and at <= now


@pytest.mark.parametrize(
    ("status", "failed_check", "days_old", "deleted"),
    [
        (S.SUCCESS, False, 29.999, False),
        (S.SUCCESS, False, 30, True),
        (S.SUCCESS, True, 30, False),  # a failed WARN check: kept like a failed run
        (S.SUCCESS, True, 179.999, False),
        (S.SUCCESS, True, 180, True),
        (S.FAILURE, False, 30, False),
        (S.FAILURE, True, 179.999, False),
        (S.FAILURE, False, 180, True),
        (S.CANCELED, False, 30, False),  # stopped by hand: as worth a look as a failure
        (S.CANCELED, False, 180, True),
    ],
)
def test_the_rule(status: S, failed_check: bool, days_old: float, deleted: bool) -> None:
    assert expired(facts(status, days_old, failed_check=failed_check)) is deleted


@pytest.mark.parametrize("status", IN_FLIGHT)
def test_a_run_in_flight_is_never_deleted(status: S) -> None:
    for days_old in (0, 30, 180, 10_000):
        for failed_check in (False, True):
            assert expires_at(facts(status, days_old, failed_check=failed_check), POLICY) is None


def test_the_healthy_period_never_outlasts_the_failed_one() -> None:
    for status in S:
        for failed_check in (False, True):
            run = facts(status, 0, failed_check=failed_check)
            at = expires_at(run, POLICY)
            assert at is None or run.created_at + timedelta(days=30) <= at


@pytest.mark.parametrize(
    ("run_days", "failed_days", "named"),
    [
        ("", "180", "V6_RUN_RETENTION_DAYS"),
        ("thirty", "180", "V6_RUN_RETENTION_DAYS"),
        ("0", "180", "V6_RUN_RETENTION_DAYS"),
        ("-5", "180", "V6_RUN_RETENTION_DAYS"),
        ("1.5", "180", "V6_RUN_RETENTION_DAYS"),
        ("30", "nan", "V6_FAILED_RUN_RETENTION_DAYS"),
        ("30", "99999999", "V6_FAILED_RUN_RETENTION_DAYS"),
        ("30", "7", "V6_FAILED_RUN_RETENTION_DAYS"),  # failed runs would go first
    ],
)
def test_a_bad_setting_is_an_error_naming_the_variable(
    run_days: str, failed_days: str, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        RetentionPolicy.parse(run_days=run_days, failed_days=failed_days)


def test_settings_come_from_the_environment_and_are_checked_at_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RunRetentionResource().policy() == RetentionPolicy(30, 180)  # the defaults
    monkeypatch.setenv("V6_RUN_RETENTION_DAYS", "7")
    monkeypatch.setenv("V6_FAILED_RUN_RETENTION_DAYS", "90")
    retention = RunRetentionResource.from_env()
    check_settings({"retention": retention})
    with retention.process_config_and_initialize_cm() as initialized:
        assert initialized.policy() == RetentionPolicy(7, 90)
    monkeypatch.setenv("V6_FAILED_RUN_RETENTION_DAYS", "3")
    with pytest.raises(ValueError, match="V6_FAILED_RUN_RETENTION_DAYS='3' is shorter"):
        check_settings({"retention": RunRetentionResource.from_env()})


def test_the_report_says_what_was_deleted_and_kept() -> None:
    deleted = (
        facts(S.SUCCESS, 31),
        facts(S.FAILURE, 200),
        facts(S.SUCCESS, 190, failed_check=True),
    )
    report = RetentionReport(POLICY, deleted, kept_failed=4)
    assert report.sentence("reconciliation_job") == (
        "deleted 3 run(s) of reconciliation_job with their event logs: 1 healthy run(s) "
        "older than 30 days, 2 failed or with a failed check older than 180 days; kept 4 "
        "failed run(s) or run(s) with a failed check older than 30 days"
    )
    metadata = report.metadata()
    assert metadata["deleted_runs"] == 3
    assert metadata["kept_failed_runs"] == 4
    assert metadata["oldest_deleted_created_at"] == (NOW - timedelta(days=200)).isoformat()


# On real instances --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request: pytest.FixtureRequest) -> Iterator[dg.DagsterInstance]:
    """The embedded default (SQLite) and the production instance (PostgreSQL)."""
    if request.param == "postgres":
        yield request.getfixturevalue("instance")
    else:
        with dg.instance_for_test() as instance:
            yield instance


def backdate(instance: dg.DagsterInstance, run_id: str, days: float) -> None:
    """Move a run's creation time back, as if `days` had passed since it ran."""
    created = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None)
    with instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(
            RunsTable.update().where(RunsTable.c.run_id == run_id).values(create_timestamp=created)
        )


def check_rows(instance: dg.DagsterInstance, run_id: str) -> int:
    table = AssetCheckExecutionsTable
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        return len(conn.execute(table.select().where(table.c.run_id == run_id)).fetchall())


def close_the_naked_leg(pipeline: Pipeline) -> None:
    """Write the close of the demo's naked leg (opened 4 hours ago) an hour ago, before any
    snapshot of the test: from then on only WARN checks fail."""
    pipeline.lake.append_position_updates(
        pl.DataFrame(
            {
                "account": ["DU222"],
                "conid": [500004],
                "symbol": ["SPY"],
                "sec_type": ["OPT"],
                "position": [0.0],
                "timestamp": [datetime.now(UTC) - timedelta(hours=1)],
            }
        )
    )


def prune(instance: dg.DagsterInstance, **settings: str) -> dg.ExecuteInProcessResult:
    """The retention op as the maintenance job runs it (here in a job of its own)."""

    @dg.job(executor_def=dg.in_process_executor)
    def retention_job() -> None:
        run_retention_op("reconciliation_job")()

    return retention_job.execute_in_process(
        instance=instance, resources={"retention": RunRetentionResource(**settings)}
    )


def test_old_runs_and_their_event_logs_leave_the_instance(
    pipeline: Pipeline, any_instance: dg.DagsterInstance
) -> None:
    instance = any_instance
    key = pipeline.newest_key()
    # Nothing in scope and no streamer to watch: every check passes.
    clean = pipeline.with_resources(
        settings=ReconciliationSettings.from_env(sec_types="FUT", stream_dead_after_s="")
    )
    runs = {"healthy": run_windows(clean, key, instance=instance)}
    assert runs["healthy"].exit_code == EXIT_OK
    runs["failed"] = run_windows(pipeline.defs, key, instance=instance)
    assert runs["failed"].exit_code == EXIT_CRITICAL
    close_the_naked_leg(pipeline)
    runs["warned"] = run_windows(pipeline.defs, key, instance=instance)
    runs["old warned"] = run_windows(pipeline.defs, key, instance=instance)
    windows = past(pipeline, 4, 3)
    store_snapshots(pipeline, windows)
    runs["warned range"] = run_windows(
        pipeline.defs, window_key(windows[0]), window_key(windows[1]), instance=instance
    )
    for name in ("warned", "old warned", "warned range"):
        assert runs[name].exit_code == EXIT_OK, name
        assert runs[name].discrepancies.height, name  # WARN checks failed, the run did not
    in_flight = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun("reconciliation_job", run_id=in_flight, status=S.STARTED))

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def other_job() -> None:
        noop()

    other = other_job.execute_in_process(instance=instance).run_id
    ages = {"healthy": 31, "failed": 31, "warned": 31, "old warned": 181, "warned range": 31}
    for name, days in ages.items():
        backdate(instance, runs[name].run_id, days)
    backdate(instance, in_flight, 400)
    backdate(instance, other, 400)
    gone = {runs["healthy"].run_id, runs["old warned"].run_id}
    kept = {runs[n].run_id for n in ("failed", "warned", "warned range")} | {in_flight, other}
    assert all(check_rows(instance, run_id) for run_id in gone)
    logs = Path(instance.root_directory) / "storage"
    assert all((logs / run_id).exists() for run_id in gone)
    sqlite = instance.event_log_storage
    shards = (
        [Path(sqlite.path_for_shard(run_id)) for run_id in gone]
        if isinstance(sqlite, SqliteEventLogStorage)
        else []
    )
    assert all(shard.exists() for shard in shards)

    result = prune(instance)

    assert result.success
    assert {r.dagster_run.run_id for r in instance.get_run_records()} >= kept
    for run_id in gone:
        assert instance.get_run_by_id(run_id) is None
        assert check_rows(instance, run_id) == 0  # what Dagster's delete_run leaves
        assert not (logs / run_id).exists()
        if not shards:
            assert instance.all_logs(run_id) == []
    assert not any(shard.exists() for shard in shards)  # ~200 KB each, left by delete_run
    for run_id in kept - {in_flight, other}:
        assert check_rows(instance, run_id)
        assert instance.all_logs(run_id)
    materialized = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("position_discrepancies")), limit=100
    ).records
    assert not {m.run_id for m in materialized} & gone
    output = result.get_step_success_events()[0]
    assert output.step_key == "prune_old_runs"
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.event_specific_data.metadata.items()}
    assert metadata["deleted_runs"] == 2
    assert metadata["deleted_healthy_runs"] == 1
    assert metadata["kept_failed_runs"] == 3
    assert set(metadata["deleted_run_ids"]) == gone
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("deleted 2 run(s) of reconciliation_job" in m for m in messages), messages

    # A second pass finds nothing more to delete, and keeps what it kept.
    again = prune(instance)
    assert again.success
    assert {r.dagster_run.run_id for r in instance.get_run_records()} >= kept


def test_shorter_settings_delete_sooner(any_instance: dg.DagsterInstance) -> None:
    run_id = str(uuid.uuid4())
    any_instance.add_run(dg.DagsterRun("reconciliation_job", run_id=run_id, status=S.FAILURE))
    backdate(any_instance, run_id, 8)  # a failed run, eight days old
    prune(any_instance)
    assert any_instance.get_run_by_id(run_id) is not None
    prune(any_instance, run_days="1", failed_days="7")
    assert any_instance.get_run_by_id(run_id) is None


def test_a_pass_takes_the_oldest_runs_first_and_leaves_the_rest_to_the_next(
    any_instance: dg.DagsterInstance,
) -> None:
    oldest_first = [str(uuid.uuid4()) for _ in range(3)]
    for run_id, days in zip(oldest_first, (400, 300, 200), strict=True):
        any_instance.add_run(dg.DagsterRun("reconciliation_job", run_id=run_id, status=S.FAILURE))
        backdate(any_instance, run_id, days)
    now = datetime.now(UTC)
    first = prune_runs(any_instance, "reconciliation_job", POLICY, now=now, max_runs=2)
    assert {run.run_id for run in first.deleted} == set(oldest_first[:2])
    assert first.left == 1
    assert "1 more past retention are left to the next pass" in first.sentence("job")
    second = prune_runs(any_instance, "reconciliation_job", POLICY, now=now, max_runs=2)
    assert {run.run_id for run in second.deleted} == set(oldest_first[2:])
    assert second.left == 0


def test_the_daily_maintenance_job_prunes_old_runs(pipeline: Pipeline) -> None:
    outcome = run_windows(pipeline.defs, pipeline.newest_key(), instance=pipeline.instance)
    backdate(pipeline.instance, outcome.run_id, 181)
    job = pipeline.defs.resolve_job_def("lake_maintenance_job")
    assert job.execute_in_process(instance=pipeline.instance).success
    assert pipeline.instance.get_run_by_id(outcome.run_id) is None
