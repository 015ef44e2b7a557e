"""`Lake`: the project's tables under one lake directory, as the pipeline uses them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import polars as pl

from v6_pipeline.lake import checkpoint, paths, schemas
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.lake.latest import iter_latest, read_latest, read_latest_many
from v6_pipeline.lake.maintenance import DEFAULT_RETENTION_HOURS, TableMaintenance, maintain_table
from v6_pipeline.lake.schemas import polars_schema
from v6_pipeline.lake.snapshots import (
    StoredSnapshot,
    read_snapshot,
    read_snapshots,
    write_snapshot,
)
from v6_pipeline.lake.source import CREATE_HINT
from v6_pipeline.lake.tables import require
from v6_pipeline.lake.updates import append_position_updates, create_position_updates
from v6_pipeline.lake.windows import read_window, read_windows, write_windows

log = logging.getLogger(__name__)


class Lake:
    """The Delta tables under `lake_dir` (a local path or an object-store URI)."""

    def __init__(
        self, lake_dir: str | os.PathLike[str], *, default_account: str | None = None
    ) -> None:
        self.lake_dir = os.fspath(lake_dir)
        self.default_account = default_account

    def uri(self, name: str) -> str:
        return paths.table_uri(self.lake_dir, name)

    def require_position_updates(self) -> None:
        """Raise `TableNotFoundError` (naming the path) unless `position_updates` exists.

        Writes nothing: a run checks this before it stores anything, so a mistyped lake
        directory is reported without being created.
        """
        require(self.uri(paths.POSITION_UPDATES), hint=CREATE_HINT)

    def read_latest(self, *, as_of: datetime) -> pl.DataFrame:
        return read_latest(
            self.uri(paths.POSITION_UPDATES), as_of=as_of, default_account=self.default_account
        )

    def read_latest_many(self, *, as_ofs: Sequence[datetime]) -> list[pl.DataFrame]:
        """`[self.read_latest(as_of=a) for a in as_ofs]`, reading the history once."""
        return read_latest_many(
            self.uri(paths.POSITION_UPDATES), as_ofs=as_ofs, default_account=self.default_account
        )

    def iter_latest(self, *, as_ofs: Sequence[datetime]) -> Iterator[tuple[datetime, pl.DataFrame]]:
        """`read_latest_many` one answer at a time, in time order (see `latest.iter_latest`)."""
        return iter_latest(
            self.uri(paths.POSITION_UPDATES), as_ofs=as_ofs, default_account=self.default_account
        )

    def create_position_updates(self) -> bool:
        return create_position_updates(self.uri(paths.POSITION_UPDATES))

    def append_position_updates(self, frame: pl.DataFrame) -> None:
        append_position_updates(self.uri(paths.POSITION_UPDATES), frame)

    def write_snapshot(
        self,
        positions: pl.DataFrame,
        *,
        window_start: datetime,
        taken_at: datetime,
        accounts: tuple[str, ...] | list[str],
        duration_s: float,
    ) -> None:
        write_snapshot(
            self.uri(paths.IB_POSITION_SNAPSHOTS),
            self.uri(paths.IB_SNAPSHOT_LOG),
            positions,
            window_start=window_start,
            taken_at=taken_at,
            accounts=accounts,
            duration_s=duration_s,
        )

    def read_snapshot(self, *, window_start: datetime) -> StoredSnapshot | None:
        return read_snapshot(
            self.uri(paths.IB_POSITION_SNAPSHOTS),
            self.uri(paths.IB_SNAPSHOT_LOG),
            window_start=window_start,
        )

    def read_snapshots(
        self, *, window_starts: Sequence[datetime]
    ) -> dict[datetime, StoredSnapshot | None]:
        """`read_snapshot` for many windows, reading each table once (UTC keys)."""
        return read_snapshots(
            self.uri(paths.IB_POSITION_SNAPSHOTS),
            self.uri(paths.IB_SNAPSHOT_LOG),
            window_starts=window_starts,
        )

    def write_discrepancies(self, frame: pl.DataFrame, *, window_start: datetime) -> None:
        self.write_discrepancies_of(frame, window_starts=[window_start])

    def write_discrepancies_of(
        self, frame: pl.DataFrame, *, window_starts: Sequence[datetime]
    ) -> None:
        """Replace the discrepancy rows of every window of `window_starts` (a range) with
        `frame`'s (told apart by `window_start`) in one commit; other windows untouched."""
        write_windows(
            self.uri(paths.POSITION_DISCREPANCIES),
            frame,
            window_starts=window_starts,
            schema=schemas.POSITION_DISCREPANCIES,
        )

    def read_discrepancies(self, *, window_start: datetime) -> pl.DataFrame:
        return read_window(
            self.uri(paths.POSITION_DISCREPANCIES),
            window_start=window_start,
            schema=schemas.POSITION_DISCREPANCIES,
        )

    def read_discrepancies_of(self, *, window_starts: Sequence[datetime]) -> pl.DataFrame:
        """The discrepancy rows of every window of `window_starts`, from one scan."""
        found = read_windows(
            self.uri(paths.POSITION_DISCREPANCIES),
            window_starts=window_starts,
            schema=schemas.POSITION_DISCREPANCIES,
        )
        return pl.concat(
            found.values() or [pl.DataFrame(schema=polars_schema(schemas.POSITION_DISCREPANCIES))]
        )

    def write_delta_latest_of(
        self, frame: pl.DataFrame, *, window_starts: Sequence[datetime]
    ) -> None:
        """Store the Delta latest positions each window of `window_starts` was judged
        against (`frame`: `window_start`, `as_of` and the `position_updates` columns), in
        one commit; other windows untouched."""
        write_windows(
            self.uri(paths.DELTA_LATEST_POSITIONS),
            frame,
            window_starts=window_starts,
            schema=schemas.DELTA_LATEST_POSITIONS,
        )

    def read_delta_latest_of(
        self, *, window_starts: Sequence[datetime]
    ) -> dict[datetime, pl.DataFrame]:
        """The stored Delta latest positions of each window (UTC keys, time order); empty
        for a window without any."""
        return read_windows(
            self.uri(paths.DELTA_LATEST_POSITIONS),
            window_starts=window_starts,
            schema=schemas.DELTA_LATEST_POSITIONS,
        )

    def maintain(
        self, *, retention_hours: int = DEFAULT_RETENTION_HOURS, since: date | None = None
    ) -> list[TableMaintenance]:
        """Compact and vacuum every table that exists; then rebuild the latest-read checkpoint
        if compaction invalidated it (or it is missing), so the next scheduled run does not
        pay for it."""
        updates = self.uri(paths.POSITION_UPDATES)
        names = (
            paths.POSITION_UPDATES,
            paths.IB_POSITION_SNAPSHOTS,
            paths.IB_SNAPSHOT_LOG,
            paths.DELTA_LATEST_POSITIONS,
            paths.POSITION_DISCREPANCIES,
            # Small appends every tick and heartbeat: compaction keeps them cheap to read.
            paths.ALERT_LOG,
            paths.STREAM_STATUS,
        )
        done = [
            m
            for name in names
            if (m := maintain_table(self.uri(name), retention_hours=retention_hours, since=since))
        ]
        log_done = next((m for m in done if m.table_uri == updates), None)
        kept = checkpoint.maintain(paths.checkpoint_uri(updates), retention_hours=retention_hours)
        if kept is not None:
            done.append(kept)
        if log_done is not None and (log_done.files_removed or kept is None):
            try:
                self.read_latest(as_of=datetime.now(UTC))
            except LakeError as error:
                log.warning("maintained, but could not rebuild the checkpoint: %s", error)
        return done
