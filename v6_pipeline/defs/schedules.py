"""Schedules: reconcile each window as it closes; maintain the lake daily."""

import dagster as dg

from v6_pipeline.defs.dead_runs import live_runs
from v6_pipeline.defs.jobs import lake_maintenance_job, reconciliation_job
from v6_pipeline.defs.partitions import is_range_run, last_closed_window, window_key


@dg.schedule(
    job=reconciliation_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every 5 minutes, reconcile the window that has just closed. Skips while a "
        "previous window's run is still in flight (a slow gateway), so runs do not pile "
        "up; a backfill in flight never costs the live window its snapshot, and a run "
        "whose process died is marked failed instead of blocking the schedule."
    ),
)
def reconciliation_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    key = window_key(last_closed_window(context.scheduled_execution_time))
    running = [r for r in live_runs(context.instance, reconciliation_job.name) if _one_window(r)]
    if running:
        return dg.SkipReason(
            f"skipping window {key}: run {running[0].run_id[:8]} is still in flight "
            "(a slow gateway?); the next window will be taken as usual"
        )
    return dg.RunRequest(run_key=key, partition_key=key)


def _one_window(run: dg.DagsterRun) -> bool:
    """A run of one window (scheduled or by hand), not a backfill of stored snapshots."""
    return not is_range_run(run.tags)


lake_maintenance_schedule = dg.ScheduleDefinition(
    name="lake_maintenance_schedule",
    job=lake_maintenance_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 03:17 UTC: compact and vacuum the Delta tables.",
)
