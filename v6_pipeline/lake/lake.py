"""`Lake`: the project's tables under one lake directory, as the pipeline uses them."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Concatenate, ParamSpec, TypeVar

import polars as pl
import pyarrow as pa

from v6_pipeline.lake import checkpoint, paths, schemas
from v6_pipeline.lake.append_only import append_rows, read_rows
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
from v6_pipeline.lake.storage import reported
from v6_pipeline.lake.tables import require
from v6_pipeline.lake.updates import append_position_updates, create_position_updates
from v6_pipeline.lake.windows import first_window, read_window, read_windows, write_windows

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _stored(method: Callable[Concatenate[Lake, _P], _R]) -> Callable[Concatenate[Lake, _P], _R]:
    """`method`, raising an object store's failure as a sentence (`LakeStorageError`)."""

    @functools.wraps(method)
    def wrapper(self: Lake, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with reported(self.lake_dir):
            return method(self, *args, **kwargs)

    return wrapper


class Lake:
    """The Delta tables under `lake_dir` (a local path or an object-store URI)."""

    def __init__(
        self, lake_dir: str | os.PathLike[str], *, default_account: str | None = None
    ) -> None:
        self.lake_dir = os.fspath(lake_dir)
        self.default_account = default_account

    def uri(self, name: str) -> str:
        return paths.table_uri(self.lake_dir, name)

    @_stored
    def require_position_updates(self) -> None:
        """Raise `TableNotFoundError` (naming the path) unless `position_updates` exists.

        Writes nothing: a run checks this before it stores anything, so a mistyped lake
        directory is reported without being created.
        """
        require(self.uri(paths.POSITION_UPDATES), hint=CREATE_HINT)

    @_stored
    def read_latest(self, *, as_of: datetime) -> pl.DataFrame:
        return read_latest(
            self.uri(paths.POSITION_UPDATES), as_of=as_of, default_account=self.default_account
        )

    @_stored
    def read_latest_many(self, *, as_ofs: Sequence[datetime]) -> list[pl.DataFrame]:
        """`[self.read_latest(as_of=a) for a in as_ofs]`, reading the history once."""
        return read_latest_many(
            self.uri(paths.POSITION_UPDATES), as_ofs=as_ofs, default_account=self.default_account
        )

    @_stored
    def iter_latest(self, *, as_ofs: Sequence[datetime]) -> Iterator[tuple[datetime, pl.DataFrame]]:
        """`read_latest_many` one answer at a time, in time order (see `latest.iter_latest`)."""
        return iter_latest(
            self.uri(paths.POSITION_UPDATES), as_ofs=as_ofs, default_account=self.default_account
        )

    @_stored
    def create_position_updates(self) -> bool:
        return create_position_updates(self.uri(paths.POSITION_UPDATES))

    @_stored
    def append_position_updates(self, frame: pl.DataFrame) -> None:
        append_position_updates(self.uri(paths.POSITION_UPDATES), frame)

    @_stored
    def write_snapshot(
        self,
        positions: pl.DataFrame,
        *,
        window_start: datetime,
        taken_at: datetime,
        accounts: tuple[str, ...] | list[str],
        duration_s: float,
        confirming: bool = False,
    ) -> None:
        """Store a window's snapshot, or with `confirming` its confirming snapshot."""
        write_snapshot(
            *self._snapshot_tables(confirming),
            positions,
            window_start=window_start,
            taken_at=taken_at,
            accounts=accounts,
            duration_s=duration_s,
        )

    @_stored
    def read_snapshot(self, *, window_start: datetime) -> StoredSnapshot | None:
        return read_snapshot(
            self.uri(paths.IB_POSITION_SNAPSHOTS),
            self.uri(paths.IB_SNAPSHOT_LOG),
            window_start=window_start,
        )

    @_stored
    def read_snapshots(
        self, *, window_starts: Sequence[datetime], confirming: bool = False
    ) -> dict[datetime, StoredSnapshot | None]:
        """`read_snapshot` for many windows, reading each table once (UTC keys); with
        `confirming`, their confirming snapshots (None where none was taken)."""
        return read_snapshots(*self._snapshot_tables(confirming), window_starts=window_starts)

    @_stored
    def first_snapshot_window(self) -> datetime | None:
        """The first window ever snapshotted here (None before the first): when the
        pipeline first ran."""
        return first_window(self.uri(paths.IB_SNAPSHOT_LOG))

    def _snapshot_tables(self, confirming: bool) -> tuple[str, str]:
        if confirming:
            return self.uri(paths.IB_CONFIRMING_SNAPSHOTS), self.uri(
                paths.IB_CONFIRMING_SNAPSHOT_LOG
            )
        return self.uri(paths.IB_POSITION_SNAPSHOTS), self.uri(paths.IB_SNAPSHOT_LOG)

    @_stored
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

    @_stored
    def read_discrepancies(self, *, window_start: datetime) -> pl.DataFrame:
        return read_window(
            self.uri(paths.POSITION_DISCREPANCIES),
            window_start=window_start,
            schema=schemas.POSITION_DISCREPANCIES,
        )

    @_stored
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

    @_stored
    def write_delta_latest_of(
        self, frame: pl.DataFrame, *, window_starts: Sequence[datetime]
    ) -> dict[datetime, pl.DataFrame]:
        """Store the Delta latest positions each window of `window_starts` was judged
        against (`frame`: `window_start`, `as_of` and the `position_updates` columns), in
        one commit; other windows untouched. Returns them as `read_delta_latest_of`
        would."""
        return write_windows(
            self.uri(paths.DELTA_LATEST_POSITIONS),
            frame,
            window_starts=window_starts,
            schema=schemas.DELTA_LATEST_POSITIONS,
        )

    @_stored
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

    # --- the append-only tables ------------------------------------------------------

    @_stored
    def append_alert_log(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append `alert_log` rows (`alerts/log.py` makes them)."""
        table = pa.Table.from_pylist(list(rows), schema=schemas.ALERT_LOG)
        append_rows(self.uri(paths.ALERT_LOG), table, properties=False)

    @_stored
    def read_alert_log(self) -> pl.DataFrame:
        """Every `alert_log` row, oldest first; empty when nothing was logged yet."""
        return read_rows(self.uri(paths.ALERT_LOG), schemas.ALERT_LOG, order_by="sent_at")

    @_stored
    def append_stream_status(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append `stream_status` heartbeat rows; an older table gains the newer columns."""
        table = pa.Table.from_pylist(list(rows), schema=schemas.STREAM_STATUS)
        append_rows(self.uri(paths.STREAM_STATUS), table, merge_schema=True)

    @_stored
    def read_stream_status(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> pl.DataFrame:
        """The heartbeat rows with `since <= heartbeat_at <= until`, oldest first."""
        return read_rows(
            self.uri(paths.STREAM_STATUS),
            schemas.STREAM_STATUS,
            order_by="heartbeat_at",
            since=since,
            until=until,
        )

    @_stored
    def append_dead_letters(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append `stream_dead_letters` rows."""
        table = pa.Table.from_pylist(list(rows), schema=schemas.STREAM_DEAD_LETTERS)
        append_rows(self.uri(paths.STREAM_DEAD_LETTERS), table)

    @_stored
    def read_dead_letters(self) -> pl.DataFrame:
        """Every dead letter, oldest first; empty when none was ever set aside."""
        return read_rows(
            self.uri(paths.STREAM_DEAD_LETTERS),
            schemas.STREAM_DEAD_LETTERS,
            order_by="set_aside_at",
        )

    @_stored
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
            paths.IB_CONFIRMING_SNAPSHOTS,
            paths.IB_CONFIRMING_SNAPSHOT_LOG,
            paths.DELTA_LATEST_POSITIONS,
            paths.POSITION_DISCREPANCIES,
            paths.JUDGMENT_LOG,
            # Small appends every tick and heartbeat: compaction keeps them cheap to read.
            paths.ALERT_LOG,
            paths.STREAM_STATUS,
            paths.STREAM_DEAD_LETTERS,
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
