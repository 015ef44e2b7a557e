"""`stream_status`: the stream's heartbeat rows, written and read back.

One row per heartbeat, appended (a small commit every `V6_STREAM_HEARTBEAT_S`; the
daily maintenance compacts them). Keeping the history, not only the newest row, lets a
check judge a past window by the heartbeats up to its `as_of`, as a backfill must.

Columns added since the first version (the backlog and the dead letters) are nullable
and added to an older table on its next append; read back, an older row has them null.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from v6_pipeline.lake import Lake
from v6_pipeline.lake.schemas import STREAM_STATUS, polars_schema

STATUS_COLUMNS: pl.Schema = polars_schema(STREAM_STATUS)


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One heartbeat row (the fields of `STREAM_STATUS`)."""

    stream_id: str
    heartbeat_at: datetime
    connected: bool
    since: datetime
    last_event_at: datetime | None
    last_write_at: datetime | None
    rows_written: int
    events: int
    pending: int
    reconnects: int
    last_error: str | None
    started_at: datetime
    hostname: str
    pid: int
    oldest_pending_at: datetime | None = None
    dead_letters: int = 0
    last_dead_letter_at: datetime | None = None
    unrepaired_since: datetime | None = None


def write_status(lake_dir: str | os.PathLike[str], status: StreamStatus) -> None:
    """Append one heartbeat row (the table is created on the first)."""
    Lake(lake_dir).append_stream_status([dataclasses.asdict(status)])


def read_stream_status(
    lake_dir: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """The heartbeat rows with `since <= heartbeat_at <= until` (either bound optional),
    oldest first; an empty frame when no stream has written the table yet."""
    return Lake(lake_dir).read_stream_status(since=since, until=until)
