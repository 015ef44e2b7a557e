"""Stored IB snapshots: a window's positions, then its log row as the commit marker; and
the judgment log, each judged window's commit marker.

A complete answer with zero positions is a snapshot (a log row, no position rows); a
window without a log row was never snapshotted. The log row is written last, so a run
that died between the two writes leaves the window "never snapshotted", not half-filled.

A window is *judged* when it has a row in `position_judgment_log`. The row is written
last, after the window's `position_discrepancies` rows and after Dagster recorded the
materialization and check results; a re-judgment clears it first. So a window with a
snapshot and no judgment row was snapshotted but not judged (the run died, its Dagster
database went away, ...), whatever `position_discrepancies` holds for it: no
discrepancy rows is never read as "clean" without a judgment row saying so. Windows
snapshotted before the judgment log existed (an older version judged them) are not
counted as un-judged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from v6_pipeline.lake import paths, schemas
from v6_pipeline.lake.errors import TornSnapshotError
from v6_pipeline.lake.paths import table_uri
from v6_pipeline.lake.storage import reported, storage_options
from v6_pipeline.lake.tables import PROPERTIES, try_open
from v6_pipeline.lake.times import as_utc
from v6_pipeline.lake.windows import read_windows, write_window, write_windows


@dataclass(frozen=True)
class StoredSnapshot:
    window_start: datetime
    taken_at: datetime
    accounts: tuple[str, ...]  # the managed accounts IB reported
    duration_s: float
    positions: pl.DataFrame  # `IB_POSITION_SNAPSHOTS` rows; empty when IB held nothing


def write_snapshot(
    snapshots_uri: str,
    log_uri: str,
    positions: pl.DataFrame,
    *,
    window_start: datetime,
    taken_at: datetime,
    accounts: tuple[str, ...] | list[str],
    duration_s: float,
) -> None:
    """Store one complete IB answer for `window_start` (replacing any earlier one)."""
    taken_at = as_utc(taken_at, "taken_at")
    if "taken_at" not in positions.columns:
        positions = positions.with_columns(taken_at=pl.lit(taken_at))
    write_window(
        snapshots_uri,
        positions,
        window_start=window_start,
        schema=schemas.IB_POSITION_SNAPSHOTS,
    )
    entry = pl.DataFrame(
        {
            "taken_at": [taken_at],
            "position_count": [positions.height],
            "accounts": [",".join(accounts)],
            "duration_s": [float(duration_s)],
        }
    )
    write_window(log_uri, entry, window_start=window_start, schema=schemas.IB_SNAPSHOT_LOG)


def read_snapshot(
    snapshots_uri: str, log_uri: str, *, window_start: datetime
) -> StoredSnapshot | None:
    """The stored snapshot of `window_start`, or None when the window was never snapshotted."""
    return read_snapshots(snapshots_uri, log_uri, window_starts=[window_start])[
        as_utc(window_start, "window_start")
    ]


def read_snapshots(
    snapshots_uri: str, log_uri: str, *, window_starts: Sequence[datetime]
) -> dict[datetime, StoredSnapshot | None]:
    """`read_snapshot` for each window of `window_starts`, reading each table once."""
    entries = read_windows(log_uri, window_starts=window_starts, schema=schemas.IB_SNAPSHOT_LOG)
    logged = [w for w, rows in entries.items() if not rows.is_empty()]
    positions = read_windows(
        snapshots_uri, window_starts=logged, schema=schemas.IB_POSITION_SNAPSHOTS
    )
    return {
        w: _checked(snapshots_uri, log_uri, rows.row(0, named=True), positions[w])
        if w in positions
        else None
        for w, rows in entries.items()
    }


def _checked(
    snapshots_uri: str, log_uri: str, entry: dict[str, Any], positions: pl.DataFrame
) -> StoredSnapshot:
    """The snapshot a log row commits to, if its position rows are all there."""
    stray = positions.filter(pl.col("taken_at") != entry["taken_at"]).height
    if positions.height != entry["position_count"] or stray:
        raise TornSnapshotError(
            f"{snapshots_uri}: window {entry['window_start'].isoformat()} holds "
            f"{positions.height} position row(s) ({stray} from another snapshot) but its log "
            f"row in {log_uri} records {entry['position_count']} taken at "
            f"{entry['taken_at'].isoformat()}: a rewrite was interrupted; re-materialize the window"
        )
    return StoredSnapshot(
        window_start=entry["window_start"],
        taken_at=entry["taken_at"],
        accounts=tuple(a for a in entry["accounts"].split(",") if a),
        duration_s=entry["duration_s"],
        positions=positions,
    )


# ---------------------------------------------------------------------------------------
# The judgment log: one row per judged window, its commit marker.


@dataclass(frozen=True)
class FailedCheck:
    check: str
    severity: str  # "ERROR" or "WARN", as Dagster's AssetCheckSeverity
    description: str  # the line a person acts on


@dataclass(frozen=True)
class Judgment:
    """A window's recorded judgment (a `position_judgment_log` row)."""

    window_start: datetime
    as_of: datetime
    judged_at: datetime
    discrepancy_count: int
    naked_count: int
    confirmed_at: datetime | None
    failed_checks: tuple[FailedCheck, ...]
    run_id: str | None


@dataclass(frozen=True)
class UnjudgedWindow:
    """A window with a stored snapshot and no judgment."""

    window_start: datetime
    taken_at: datetime


@dataclass(frozen=True)
class JudgmentLog:
    """`position_judgment_log` under `lake_dir`, read beside `ib_snapshot_log`."""

    lake_dir: str

    @property
    def uri(self) -> str:
        return table_uri(self.lake_dir, paths.JUDGMENT_LOG)

    @property
    def snapshot_log_uri(self) -> str:
        return table_uri(self.lake_dir, paths.IB_SNAPSHOT_LOG)

    def create(self) -> None:
        """Create the (empty) log unless it exists. A live run does so before it stores a
        snapshot, so the window counts as un-judged until its judgment is recorded."""
        with reported(self.lake_dir):
            if try_open(self.uri) is not None:
                return
            try:
                DeltaTable.create(
                    self.uri,
                    schemas.JUDGMENT_LOG.append(schemas.WINDOW_DATE),
                    partition_by=schemas.WINDOW_PARTITION_BY,
                    mode="ignore",  # another run created it meanwhile: theirs stands
                    configuration=PROPERTIES,
                    storage_options=storage_options(self.uri),
                )
            except DeltaError:
                if try_open(self.uri) is None:
                    raise

    def clear(self, window_starts: Sequence[datetime]) -> None:
        """Forget the judgments of `window_starts`: done before they are judged again, so
        a re-judgment that does not finish leaves them un-judged, not judged by rows that
        its judgment row no longer describes."""
        if not window_starts or try_open(self.uri) is None:
            return
        with reported(self.lake_dir):
            write_windows(
                self.uri, _judgment_frame([]), window_starts=window_starts,
                schema=schemas.JUDGMENT_LOG,
            )  # fmt: skip

    def record(self, judgments: Sequence[Judgment]) -> None:
        """Store the judgments (one row per window, replacing earlier ones) in one commit."""
        if not judgments:
            return
        with reported(self.lake_dir):
            write_windows(
                self.uri,
                _judgment_frame(judgments),
                window_starts=[j.window_start for j in judgments],
                schema=schemas.JUDGMENT_LOG,
            )

    def read(self, window_starts: Sequence[datetime]) -> dict[datetime, Judgment | None]:
        """Each window's recorded judgment (UTC keys); None for a window without one."""
        with reported(self.lake_dir):
            found = read_windows(self.uri, window_starts=window_starts, schema=schemas.JUDGMENT_LOG)
        return {w: _judgment(rows.row(0, named=True)) if rows.height else None
                for w, rows in found.items()}  # fmt: skip

    def snapshot_times(self, window_starts: Sequence[datetime]) -> dict[datetime, datetime]:
        """When each snapshotted window of `window_starts` was taken (from its log row)."""
        with reported(self.lake_dir):
            found = read_windows(
                self.snapshot_log_uri, window_starts=window_starts, schema=schemas.IB_SNAPSHOT_LOG
            )
        return {w: rows["taken_at"][0] for w, rows in found.items() if rows.height}

    def unjudged(self, *, since: datetime, until: datetime) -> list[UnjudgedWindow]:
        """The windows starting in [since, until] that were snapshotted after the log was
        created and have no judgment, oldest first. Reads two small logs, pruned to the
        dates of the interval."""
        since, until = as_utc(since, "since"), as_utc(until, "until")
        with reported(self.lake_dir):
            judged_table = try_open(self.uri)
            snap_table = try_open(self.snapshot_log_uri)
            if judged_table is None or snap_table is None or until < since:
                return []
            created = datetime.fromtimestamp(judged_table.metadata().created_time / 1000, UTC)
            days = _days(since, until)
            in_range = (
                pl.col(schemas.WINDOW_DATE.name).is_in(days),
                pl.col("window_start") >= since,
                pl.col("window_start") <= until,
            )
            snapped = (
                pl.scan_delta(snap_table)
                .filter(*in_range, pl.col("taken_at") >= created)
                .select("window_start", "taken_at")
                .collect()
            )
            if snapped.is_empty():
                return []
            judged = pl.scan_delta(judged_table).filter(*in_range).select("window_start").collect()
        missing = snapped.join(judged, on="window_start", how="anti").sort("window_start")
        return [UnjudgedWindow(w, t) for w, t in missing.iter_rows()]


def _days(since: datetime, until: datetime) -> list[date]:
    days, day = [], since.date()
    while day <= until.date():
        days.append(day)
        day += timedelta(days=1)
    return days


def _judgment_frame(judgments: Sequence[Judgment]) -> pl.DataFrame:
    types = pl.from_arrow(schemas.JUDGMENT_LOG.empty_table()).schema  # type: ignore[union-attr]
    return pl.DataFrame(
        {
            "window_start": [j.window_start for j in judgments],
            "as_of": [j.as_of for j in judgments],
            "judged_at": [j.judged_at for j in judgments],
            "discrepancy_count": [j.discrepancy_count for j in judgments],
            "naked_count": [j.naked_count for j in judgments],
            "confirmed_at": [j.confirmed_at for j in judgments],
            "failed_checks": [json.dumps([vars(c) for c in j.failed_checks]) for j in judgments],
            "run_id": [j.run_id for j in judgments],
        },
        schema=types,
    )


def _judgment(row: dict[str, Any]) -> Judgment:
    return Judgment(
        window_start=row["window_start"],
        as_of=row["as_of"],
        judged_at=row["judged_at"],
        discrepancy_count=row["discrepancy_count"],
        naked_count=row["naked_count"],
        confirmed_at=row["confirmed_at"],
        failed_checks=tuple(FailedCheck(**c) for c in json.loads(row["failed_checks"])),
        run_id=row["run_id"],
    )
