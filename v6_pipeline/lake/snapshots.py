"""Stored IB snapshots: a window's positions, then its log row as the commit marker.

A complete answer with zero positions is a snapshot (a log row, no position rows); a
window without a log row was never snapshotted. The log row is written last, so a run
that died between the two writes leaves the window "never snapshotted", not half-filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from v6_pipeline.lake import schemas
from v6_pipeline.lake.errors import TornSnapshotError
from v6_pipeline.lake.times import as_utc
from v6_pipeline.lake.windows import read_windows, write_window


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
