"""Run retention: old reconciliation runs and their event logs leave the Dagster instance.

A 5-minute schedule makes 288 runs a day, ~105,000 a year, and Dagster keeps every run
and its event log until someone deletes them (its `retention:` setting purges only
schedule and sensor ticks). The lake keeps every window's results forever, so a run's
record only matters to whoever investigates it: a healthy run is kept
`V6_RUN_RETENTION_DAYS` (30), a failed run or one with a failed check
`V6_FAILED_RUN_RETENTION_DAYS` (180). Runs in flight are never touched.

`expires_at` is the rule, a function of data; `prune_runs` applies it to an instance;
`run_retention_op` is the daily op of the maintenance job.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Self

import dagster as dg
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

from v6_pipeline.defs.resources import _Settings

_MAX_DAYS = 36_500  # a hundred years: anything longer is a typo
FINISHED = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)
_FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
_BATCH = 500  # run ids per query: well under every database's limit on parameters
# A pass deletes ~12 runs a second, so a year's backlog (~100,000 runs) would outlast run
# monitoring's 2 hours: a pass takes the oldest 20,000 and leaves the rest to the next.
MAX_PER_PASS = 20_000


def _days(variable: str, raw: str) -> int:
    try:
        days = int(raw.strip())
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a whole number of days") from None
    if not 1 <= days <= _MAX_DAYS:
        raise ValueError(
            f"{variable}={raw!r} must be between 1 and {_MAX_DAYS} days (a run is kept this long)"
        )
    return days


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a finished run is kept: healthy ones `run_days`, the rest `failed_days`."""

    run_days: int
    failed_days: int

    @classmethod
    def parse(cls, *, run_days: str, failed_days: str) -> Self:
        """The policy from the raw `V6_*` strings; ValueError names the bad variable."""
        policy = cls(
            _days("V6_RUN_RETENTION_DAYS", run_days),
            _days("V6_FAILED_RUN_RETENTION_DAYS", failed_days),
        )
        if policy.failed_days < policy.run_days:
            raise ValueError(
                f"V6_FAILED_RUN_RETENTION_DAYS={failed_days!r} is shorter than "
                f"V6_RUN_RETENTION_DAYS={run_days!r}: failed runs, the ones worth "
                "investigating, would go first. Keep them at least as long as healthy runs"
            )
        return policy

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        """(healthy runs created before it expire, every finished run created before it
        expires)."""
        return now - timedelta(days=self.run_days), now - timedelta(days=self.failed_days)


@dataclass(frozen=True)
class RunFacts:
    """What the rule needs to know about a run."""

    run_id: str
    created_at: datetime
    status: dg.DagsterRunStatus
    failed_check: bool  # a check of the run evaluated to failed (ERROR or WARN)

    @property
    def healthy(self) -> bool:
        return self.status == dg.DagsterRunStatus.SUCCESS and not self.failed_check


def expires_at(run: RunFacts, policy: RetentionPolicy) -> datetime | None:
    """When `run` may be deleted; None while it is in flight (never while it runs)."""
    if run.status not in FINISHED:
        return None
    days = policy.run_days if run.healthy else policy.failed_days
    return run.created_at + timedelta(days=days)


@dataclass(frozen=True)
class RetentionReport:
    """What one pass deleted, and what it kept past the healthy period."""

    policy: RetentionPolicy
    deleted: tuple[RunFacts, ...]
    kept_failed: int  # older than `run_days`, kept for failing or for a failed check
    left: int = 0  # past retention, left to the next pass (MAX_PER_PASS)

    def sentence(self, job_name: str) -> str:
        healthy = sum(run.healthy for run in self.deleted)
        return (
            f"deleted {len(self.deleted)} run(s) of {job_name} with their event logs: "
            f"{healthy} healthy run(s) older than {self.policy.run_days} days, "
            f"{len(self.deleted) - healthy} failed or with a failed check older than "
            f"{self.policy.failed_days} days; kept {self.kept_failed} failed run(s) or "
            f"run(s) with a failed check older than {self.policy.run_days} days"
            + (f"; {self.left} more past retention are left to the next pass" if self.left else "")
        )

    def metadata(self) -> dict[str, object]:
        ids = [run.run_id for run in self.deleted]
        shown = ids[:50] + ([f"and {len(ids) - 50} more"] if len(ids) > 50 else [])
        created = [run.created_at for run in self.deleted]
        return {
            "deleted_runs": len(ids),
            "deleted_healthy_runs": sum(run.healthy for run in self.deleted),
            "kept_failed_runs": self.kept_failed,
            "left_to_next_pass": self.left,
            "oldest_deleted_created_at": min(created).isoformat() if created else "",
            "newest_deleted_created_at": max(created).isoformat() if created else "",
            "deleted_run_ids": dg.MetadataValue.json(shown),
            "run_days": self.policy.run_days,
            "failed_run_days": self.policy.failed_days,
        }


def prune_runs(
    instance: dg.DagsterInstance,
    job_name: str,
    policy: RetentionPolicy,
    *,
    now: datetime,
    max_runs: int = MAX_PER_PASS,
) -> RetentionReport:
    """Delete `job_name`'s runs that `policy` lets go at `now`, oldest first and at most
    `max_runs`, with their event logs, check results and captured logs."""
    healthy_before, failed_before = policy.cutoffs(now)
    # Queries narrow by creation time and status; `expires_at` has the last word.
    old = instance.get_run_ids(
        dg.RunsFilter(job_name=job_name, statuses=list(FINISHED), created_before=failed_before)
    )
    succeeded = instance.get_run_ids(
        dg.RunsFilter(
            job_name=job_name,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            created_before=healthy_before,
            created_after=failed_before,
        )
    )
    # A failed check decides between the two cutoffs; older runs all go (it sorts the report).
    flagged = _runs_with_failed_checks(instance, [*old[-max_runs:], *succeeded])
    kept_failed = len(set(succeeded) & flagged) + instance.get_runs_count(
        dg.RunsFilter(
            job_name=job_name,
            statuses=list(_FAILED),
            created_before=healthy_before,
            created_after=failed_before,
        )
    )
    # Newest first from storage: reversed, so that a capped pass takes the oldest.
    candidates = [*old[::-1], *(run_id for run_id in succeeded[::-1] if run_id not in flagged)]
    deleted: list[RunFacts] = []
    for batch in _batches(candidates[:max_runs]):
        records = instance.get_run_records(dg.RunsFilter(run_ids=batch))
        expired = [
            facts
            for facts in (_facts(record, flagged) for record in records)
            if (at := expires_at(facts, policy)) is not None and at <= now
        ]
        _delete(instance, [facts.run_id for facts in expired])
        deleted.extend(expired)
    return RetentionReport(policy, tuple(deleted), kept_failed, max(0, len(candidates) - max_runs))


def _facts(record: dg.RunRecord, flagged: set[str]) -> RunFacts:
    run = record.dagster_run
    return RunFacts(run.run_id, record.create_timestamp, run.status, run.run_id in flagged)


def _batches(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _BATCH):
        yield list(items[start : start + _BATCH])


def _runs_with_failed_checks(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> set[str]:
    # Dagster keeps each check's outcome by run in `asset_check_executions`; it has no
    # public query by run, and one per run would cost ~40,000 queries a day here.
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return set(run_ids)  # cannot tell: treat every run as worth keeping longer
    table = AssetCheckExecutionsTable
    flagged: set[str] = set()
    with storage.index_connection() as conn:
        for batch in _batches(run_ids):
            rows = conn.execute(
                table.select()
                .with_only_columns(table.c.run_id)
                .where(table.c.run_id.in_(batch))
                .where(table.c.execution_status == "FAILED")
                .distinct()
            )
            flagged.update(row[0] for row in rows)
    return flagged


def _delete(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> None:
    """Delete the runs, then what Dagster's `delete_run` leaves behind: their check
    results (~12 KB a run), captured logs and, on SQLite, each run's own `.db` file
    (~200 KB, empty but never removed)."""
    if not run_ids:
        return
    storage = instance.event_log_storage
    for run_id in run_ids:
        instance.delete_run(run_id)
    if isinstance(storage, SqlEventLogStorage):
        with storage.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.delete().where(
                    AssetCheckExecutionsTable.c.run_id.in_(run_ids)
                )
            )
    for run_id in run_ids:
        instance.compute_log_manager.delete_logs(prefix=[run_id])
        if isinstance(storage, SqliteEventLogStorage):
            shard = storage.path_for_shard(run_id)
            for path in (shard, f"{shard}-wal", f"{shard}-shm"):
                if os.path.exists(path):
                    os.remove(path)


class RunRetentionResource(_Settings):
    """How long runs stay in the Dagster instance (`V6_RUN_RETENTION_DAYS`,
    `V6_FAILED_RUN_RETENTION_DAYS`)."""

    ENV: ClassVar[dict[str, str]] = {
        "run_days": "V6_RUN_RETENTION_DAYS",
        "failed_days": "V6_FAILED_RUN_RETENTION_DAYS",
    }

    run_days: str = "30"
    failed_days: str = "180"

    def check(self) -> None:
        self.policy()

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy.parse(run_days=self.run_days, failed_days=self.failed_days)


def run_retention_op(job_name: str) -> dg.OpDefinition:
    """The daily op deleting `job_name`'s runs past their retention."""

    @dg.op(
        name="prune_old_runs",
        description=(
            f"Delete runs of {job_name} and their event logs from the Dagster instance: "
            "healthy runs after V6_RUN_RETENTION_DAYS days, failed runs and runs with a "
            "failed check after V6_FAILED_RUN_RETENTION_DAYS days. The lake keeps every "
            "window's results."
        ),
    )
    def prune_old_runs(context: dg.OpExecutionContext, retention: RunRetentionResource):
        report = prune_runs(context.instance, job_name, retention.policy(), now=datetime.now(UTC))
        context.log.info(report.sentence(job_name))
        return dg.Output(None, metadata=report.metadata())

    return prune_old_runs
