"""Dagster's records read into the alert model's observations, with a cursor.

Judged windows come from `position_discrepancies` materializations, run outcomes from
RUN_SUCCESS / RUN_FAILURE events, both by storage id: three windows judged between two
ticks are three observations, in order, and nothing is read twice. On a sensor's first
tick the feed starts `FIRST_LOOK` back, so a failure while the sensor starts is still
seen, but a history that happened before alerting existed does not page.

A judged window's legs are its rows in `position_discrepancies`. When they cannot be
read with certainty (the lake unreachable or unreadable, the table missing or not the
one the materialization names, or fewer or more rows than it says it wrote), the feed
raises `LakeUnreadableError` and advances nothing: an empty read is never taken for a
clean window, so it can never resolve an alert.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
from deltalake import DeltaTable

from v6_pipeline.alerts.observations import Leg, Observation, RunFailed, RunSucceeded, WindowJudged
from v6_pipeline.confirm import INFO
from v6_pipeline.defs.checks import ASSET
from v6_pipeline.defs.partitions import is_range_run, window_start
from v6_pipeline.defs.run_failures import CHECK_FAILED, step_failures
from v6_pipeline.lake import Lake, paths
from v6_pipeline.lake.errors import LakeStorageError
from v6_pipeline.lake.paths import is_local
from v6_pipeline.lake.storage import is_s3, reported
from v6_pipeline.lake.tables import try_open

JOB = "reconciliation_job"
# A materialization launched outside the job (the UI's Materialize, `dagster asset
# materialize`) runs as the implicit asset job.
JOBS = [JOB, "__ASSET_JOB"]
FIRST_LOOK = timedelta(minutes=10)
_BATCH = 200
ROW_COUNT = "dagster/row_count"  # how many rows a window's materialization wrote
LAKE_SETTING = "V6_LAKE_DIR"


class LakeUnreadableError(Exception):
    """The judged windows' rows cannot be read with certainty: a sentence naming what
    could not be read and the setting to check. Nothing may be concluded this tick."""


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
    instance: dg.DagsterInstance,
    store: Lake,
    since: FeedPosition | None,
    *,
    now: datetime,
    legs: bool = True,
) -> tuple[list[Observation], FeedPosition]:
    """Every observation after `since`, oldest first, and the new position. With `legs`
    False the windows come without their legs, and the lake is not read at all (the
    pipeline and silence incidents need only that a window was judged).

    Raises `LakeUnreadableError` when the legs are wanted and cannot be read with certainty.
    """
    start = since or _first_position(instance, now)
    judged, mat_id = _judged_windows(instance, store, start.materializations, legs=legs)
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
    instance: dg.DagsterInstance, store: Lake, after: int, *, legs: bool
) -> tuple[list[WindowJudged], int]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), after_storage_id=after),
        limit=_BATCH,
        ascending=True,
    ).records
    if not records:
        return [], after
    judged_records = [r for r in records if r.partition_key]
    live = {r.storage_id: _live(instance, r) for r in judged_records}
    read = legs and judged_records
    rows = _discrepancies(store, judged_records, live) if read else pl.DataFrame()
    judged = []
    for record in judged_records:
        key = record.partition_key
        assert key is not None
        as_of = record.asset_materialization.metadata.get("as_of")
        mine = rows.filter(pl.col("window_start") == window_start(key)) if rows.height else rows
        judged.append(
            WindowJudged(
                window_key=key,
                as_of=datetime.fromtimestamp(as_of.value, UTC) if as_of else _utc(record.timestamp),
                judged_at=_utc(record.timestamp),
                legs=tuple(Leg.from_row(row) for row in _alertable(mine).iter_rows(named=True)),
                live=live[record.storage_id],
                run_id=record.run_id,
            )
        )
    return judged, records[-1].storage_id


def _live(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> bool:
    """Judged from a snapshot taken live for it, and not by a range run or backfill."""
    metadata = record.asset_materialization.metadata
    run = instance.get_run_by_id(record.run_id)
    return bool(getattr(metadata.get("judged_live"), "value", False)) and not (
        run and is_range_run(run.tags)
    )


def _discrepancies(
    store: Lake, records: Sequence[dg.EventLogRecord], live: Mapping[int, bool]
) -> pl.DataFrame:
    """The rows of the windows of `records`, read with certainty; else
    `LakeUnreadableError`. A live window must also name this lake and hold the rows it
    wrote; a backfill's never pages, so it is not held to that (a backfill into another
    lake must not stop the alerts)."""
    uri = store.uri(paths.POSITION_DISCREPANCIES)
    keys = list(dict.fromkeys(r.partition_key for r in records if r.partition_key))
    check = f"check {LAKE_SETTING}{' and the AWS_* settings' if is_s3(uri) else ''}"
    pages = [r for r in records if live[r.storage_id]]
    for record in pages:
        written = _table_of(record)
        if written is not None and not _same_table(written, uri):
            raise LakeUnreadableError(
                f"window {record.partition_key} was judged into {written} (run "
                f"{record.run_id}), but this sensor reads {uri}: check {LAKE_SETTING}; the "
                "sensors must read the lake the runs write"
            )
    try:
        with reported(store.lake_dir):
            table = try_open(uri)
            rows = (
                store.read_discrepancies_of(window_starts=[window_start(k) for k in keys])
                if table is not None
                else None
            )
    except LakeStorageError as exc:  # names the setting itself
        raise LakeUnreadableError(f"cannot read {uri}: {exc}") from exc
    except Exception as exc:
        said = " ".join(str(exc).split())[:300]
        raise LakeUnreadableError(
            f"cannot read {uri} ({type(exc).__name__}: {said}): {check}, and that this "
            "process may read the lake"
        ) from exc
    if rows is None:
        newest = records[-1]
        raise LakeUnreadableError(
            f"no Delta table at {uri}, yet {len(keys)} window(s) were judged into it "
            f"(newest {newest.partition_key}, run {newest.run_id}): {check}; the sensors "
            "must read the lake the runs write"
        )
    assert table is not None  # rows were read from it
    _check_counts(uri, table, rows, pages, check)
    return rows


def _table_of(record: dg.EventLogRecord) -> str | None:
    """The table a materialization says it wrote (its `table` metadata), if it says."""
    materialization = record.asset_materialization
    value = materialization.metadata.get("table") if materialization else None
    return str(value.value) if value is not None else None


def _same_table(a: str, b: str) -> bool:
    if is_local(a) and is_local(b):  # one directory, however it is spelled
        return os.path.realpath(a.removeprefix("file://")) == os.path.realpath(
            b.removeprefix("file://")
        )
    return a.rstrip("/") == b.rstrip("/")


def _check_counts(
    uri: str,
    table: DeltaTable,
    rows: pl.DataFrame,
    records: Sequence[dg.EventLogRecord],
    check: str,
) -> None:
    """Raise `LakeUnreadableError` when a window holds another number of rows than its
    newest materialization here wrote, and the table has not been written since (a newer
    write, a re-judgment in flight or one never recorded, explains a difference; nothing
    else does: this lake is not the one the runs wrote)."""
    wrote: dict[str, tuple[int, dg.EventLogRecord]] = {}
    for record in records:
        materialization = record.asset_materialization
        count = materialization.metadata.get(ROW_COUNT) if materialization else None
        if count is not None and record.partition_key:  # older runs did not record it
            wrote[record.partition_key] = (int(count.value), record)  # the newest wins
    if not wrote:
        return
    held = dict(rows.group_by("window_start").len().iter_rows() if rows.height else [])
    differ = [
        (key, n, held.get(window_start(key), 0), record)
        for key, (n, record) in wrote.items()
        if held.get(window_start(key), 0) != n
    ]
    if not differ:
        return
    try:
        stamp = table.history(1)[0].get("timestamp")  # ms since the epoch
    except Exception as exc:
        raise LakeUnreadableError(f"cannot read the history of {uri} ({exc}): {check}") from exc
    for key, n, found, record in differ:
        if stamp is None or stamp / 1000 <= record.timestamp:
            raise LakeUnreadableError(
                f"{uri} holds {found} row(s) of window {key}, but run {record.run_id} wrote "
                f"{n} there and nothing has written the table since: this is not the lake "
                f"the runs write; {check}"
            )


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
        live = not is_range_run(run.tags)
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
    # A failure the asset raised for the naked check (`checks.naked_failure`) is the
    # verdict, as is Dagster's own for the blocking check.
    failures = [f for f in step_failures(steps) if f.cause != CHECK_FAILED]
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
