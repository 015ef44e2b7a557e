"""Dagster's records read into the alert model's observations, with a cursor.

Judged windows come from `position_discrepancies` materializations, run outcomes from
RUN_SUCCESS / RUN_FAILURE events, both by storage id: three windows judged between two
ticks are three observations, in order, and nothing is read twice. On a sensor's first
tick the feed starts `FIRST_LOOK` back, so a failure while the sensor starts is still
seen, but a history that happened before alerting existed does not page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from v6_pipeline.alerts.observations import Leg, Observation, RunFailed, RunSucceeded, WindowJudged
from v6_pipeline.confirm import INFO
from v6_pipeline.defs.checks import ASSET
from v6_pipeline.defs.partitions import window_start
from v6_pipeline.lake import Lake
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.run.failures import step_failures

JOB = "reconciliation_job"
# A materialization launched outside the job (the UI's Materialize, `dagster asset
# materialize`) runs as the implicit asset job.
JOBS = [JOB, "__ASSET_JOB"]
FIRST_LOOK = timedelta(minutes=10)
_BATCH = 200
_RANGE_TAGS = {"dagster/backfill", "dagster/asset_partition_range_start"}


@dataclass(frozen=True)
class FeedPosition:
    """Where the feed stopped: the last storage id read of each stream."""

    materializations: int
    runs: int

    def to_json(self) -> str:
        return json.dumps([self.materializations, self.runs])

    @classmethod
    def from_json(cls, raw: str | int | None) -> FeedPosition | None:
        if not isinstance(raw, str):
            return None
        materializations, runs = json.loads(raw)
        return cls(materializations, runs)


def read_feed(
    instance: dg.DagsterInstance, store: Lake, since: FeedPosition | None, *, now: datetime
) -> tuple[list[Observation], FeedPosition]:
    """Every observation after `since`, oldest first, and the new position."""
    start = since or _first_position(instance, now)
    judged, mat_id = _judged_windows(instance, store, start.materializations)
    outcomes, run_id = _run_outcomes(instance, start.runs)
    # Interleave in time: a run's outcome after the windows it judged.
    merged = sorted([*judged, *outcomes], key=_observed_at)
    return merged, FeedPosition(mat_id, run_id)


def _observed_at(observation: Observation) -> datetime:
    if isinstance(observation, WindowJudged):
        return observation.judged_at
    if isinstance(observation, RunFailed):
        return observation.failed_at
    return observation.succeeded_at


def _first_position(instance: dg.DagsterInstance, now: datetime) -> FeedPosition:
    """The storage ids just before `FIRST_LOOK` ago."""
    after = (now - FIRST_LOOK).timestamp()

    def before(records: list[dg.EventLogRecord]) -> int:
        old = [r.storage_id for r in records if r.timestamp < after]
        return max(old) if old else (min(r.storage_id for r in records) - 1 if records else 0)

    mats = instance.fetch_materializations(dg.AssetKey(ASSET), limit=_BATCH).records
    runs = [
        r
        for kind in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
        for r in instance.fetch_run_status_changes(kind, limit=_BATCH).records
    ]
    return FeedPosition(before(list(mats)), before(runs))


def _judged_windows(
    instance: dg.DagsterInstance, store: Lake, after: int
) -> tuple[list[WindowJudged], int]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), after_storage_id=after),
        limit=_BATCH,
        ascending=True,
    ).records
    if not records:
        return [], after
    keys = [r.partition_key for r in records if r.partition_key]
    try:
        rows = store.read_discrepancies_of(window_starts=[window_start(k) for k in keys])
    except LakeError:
        rows = pl.DataFrame()  # the table is gone: the windows still count as judged
    judged = []
    for record in records:
        key = record.partition_key
        if key is None:
            continue
        metadata = record.asset_materialization.metadata
        as_of = metadata.get("as_of")
        mine = rows.filter(pl.col("window_start") == window_start(key)) if rows.height else rows
        run = instance.get_run_by_id(record.run_id)
        judged.append(
            WindowJudged(
                window_key=key,
                as_of=datetime.fromtimestamp(as_of.value, UTC) if as_of else _utc(record.timestamp),
                judged_at=_utc(record.timestamp),
                legs=tuple(Leg.from_row(row) for row in _alertable(mine).iter_rows(named=True)),
                live=bool(getattr(metadata.get("judged_live"), "value", False))
                and not (run and _RANGE_TAGS & set(run.tags)),
                run_id=record.run_id,
            )
        )
    return judged, records[-1].storage_id


def _run_outcomes(instance: dg.DagsterInstance, after: int) -> tuple[list[Observation], int]:
    batches = [
        instance.fetch_run_status_changes(
            # Filtered by job below: SQLite ignores `job_names`, PostgreSQL refuses it.
            dg.RunStatusChangeRecordsFilter(event_type=kind, after_storage_id=after),
            limit=_BATCH,
            ascending=True,
        ).records
        for kind in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
    ]
    # A full batch may have more after it: read no further than the shortest full one,
    # so that the cursor never skips an outcome of the other kind.
    full = [batch[-1].storage_id for batch in batches if len(batch) == _BATCH]
    until = min(full) if full else None
    records = sorted(
        (r for batch in batches for r in batch if until is None or r.storage_id <= until),
        key=lambda r: r.storage_id,
    )
    outcomes: list[Observation] = []
    for record in records:
        run = instance.get_run_by_id(record.run_id)
        if run is None or run.job_name not in JOBS:
            continue
        live = not (_RANGE_TAGS & set(run.tags))
        window = run.tags.get("dagster/partition")
        at = _utc(record.timestamp)
        failure = _failure(instance, record)
        if failure is None:
            outcomes.append(RunSucceeded(run.run_id, at, live=live, window_key=window))
        else:
            cause, message = failure
            outcomes.append(RunFailed(run.run_id, at, cause, message, live, window))
    return outcomes, records[-1].storage_id if records else after


def _failure(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> tuple[str, str] | None:
    """A failed run's (cause, sentence); None when the run succeeded, or failed only on
    the blocking naked check (a verdict: the critical incident covers it)."""
    event = record.event_log_entry.dagster_event
    if event is None or event.event_type != dg.DagsterEventType.RUN_FAILURE:
        return None
    steps = [e.dagster_event for e in instance.all_logs(record.run_id) if e.dagster_event]
    failures = step_failures(steps)
    if failures:
        return failures[0].cause, failures[0].message
    if any(e.is_step_failure for e in steps):
        return None  # only the blocking check failed
    # The run failed outside any step (its process died, it was terminated, ...).
    return "RunFailure", record.event_log_entry.message or "the run failed"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _alertable(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows that may alert: a near miss (RESOLVED_IN_FLIGHT, info) is shown, not sent."""
    return rows.filter(pl.col("severity") != INFO) if rows.height else rows
