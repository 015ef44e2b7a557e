"""Per-window tables (`ib_position_snapshots`, `ib_snapshot_log`, `delta_latest_positions`,
`position_discrepancies`).

A window's rows, or a range's, are replaced in one Delta commit by a predicate overwrite
on their `window_start`s (and date partitions, so only those days' files are looked at):
re-materializing a window never duplicates rows and leaves other windows' rows as they
were. The tables are partitioned by the UTC date of the window, not by window.

A write that loses a commit race to another writer (two runs of overlapping windows, a
run and the daily compaction) fails whole in Delta (`CommitFailedError`) and is done
again on top of the winner's commit: being a replacement, it cannot duplicate rows.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake
from deltalake.exceptions import CommitFailedError

from v6_pipeline.lake.errors import WriteConflictError
from v6_pipeline.lake.schemas import WINDOW_DATE, WINDOW_PARTITION_BY
from v6_pipeline.lake.storage import storage_options
from v6_pipeline.lake.tables import PROPERTIES, try_open
from v6_pipeline.lake.times import as_utc

log = logging.getLogger(__name__)

WINDOW_START = pl.Datetime("us", "UTC")
# Writes of one range, each after another writer's commit: a few suffice unless writers
# keep colliding, which the error then says.
COMMIT_ATTEMPTS = 5
RETRY_PAUSE_S = 0.1  # doubled on each attempt, with jitter so two losers part ways


def write_window(
    table_uri: str, frame: pl.DataFrame, *, window_start: datetime, schema: pa.Schema
) -> None:
    """Replace the rows of window `window_start` with `frame` (creating the table if needed).

    `frame` has the columns of `schema`; nullable ones may be left out (null), and so may
    `window_start` (filled in; when present it must be this window). An empty frame clears
    the window.
    """
    write_windows(table_uri, frame, window_starts=[window_start], schema=schema)


def write_windows(
    table_uri: str, frame: pl.DataFrame, *, window_starts: Sequence[datetime], schema: pa.Schema
) -> dict[datetime, pl.DataFrame]:
    """Replace the rows of every window of `window_starts` with `frame`, in one commit (a
    range written window by window would be 288 commits a day); the rows committed, per
    window, as `read_windows` would return them.

    As `write_window`; `frame` holds the rows of all these windows, told apart by its
    `window_start` column (which may be left out only for a single window). A window
    without rows in `frame` is cleared; windows not in `window_starts` are left as they were.
    """
    starts = sorted({as_utc(w, "window_start") for w in window_starts})
    if not starts:
        if not frame.is_empty():
            raise ValueError(f"{frame.height} row(s) for no window: pass their window_starts")
        return {}
    data = _conform(frame, window_starts=starts, schema=schema)
    days = ", ".join(f"'{d.isoformat()}'" for d in sorted({w.date() for w in starts}))
    windows = ", ".join(f"'{w.isoformat()}'" for w in starts)
    # The dates prune the partitions, the bounds the files within them (statistics).
    predicate = (
        f"{WINDOW_DATE.name} IN ({days}) AND window_start >= '{starts[0].isoformat()}' "
        f"AND window_start <= '{starts[-1].isoformat()}' AND window_start IN ({windows})"
    )
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            write_deltalake(
                table_uri,
                data,
                mode="overwrite",
                partition_by=WINDOW_PARTITION_BY,
                predicate=predicate,
                configuration=PROPERTIES,
                storage_options=storage_options(table_uri),
            )
            written = pl.from_arrow(data).select(_empty(schema).columns)  # type: ignore[union-attr]
            return _by_window(written, starts, schema)
        except CommitFailedError as error:
            said = str(error).splitlines()[0]
            if attempt == COMMIT_ATTEMPTS:
                raise WriteConflictError(
                    f"{table_uri}: {attempt} attempts to replace the rows of {len(starts)} "
                    f"window(s) from {starts[0].isoformat()} each lost a commit race to "
                    f"another writer ({said}); none was stored: run the window(s) again"
                ) from error
            pause = RETRY_PAUSE_S * 2**attempt * random.uniform(0.5, 1.5)
            log.warning(
                "%s: another writer committed first (%s); writing %d window(s) from %s "
                "again in %.2f s (attempt %d of %d)",
                table_uri,
                said,
                len(starts),
                starts[0].isoformat(),
                pause,
                attempt + 1,
                COMMIT_ATTEMPTS,
            )
            time.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")


def read_window(table_uri: str, *, window_start: datetime, schema: pa.Schema) -> pl.DataFrame:
    """The rows of window `window_start` (columns of `schema`); empty when there are none."""
    return read_windows(table_uri, window_starts=[window_start], schema=schema)[
        as_utc(window_start, "window_start")
    ]


def read_windows(
    table_uri: str, *, window_starts: Sequence[datetime], schema: pa.Schema
) -> dict[datetime, pl.DataFrame]:
    """The rows of each window of `window_starts` (columns of `schema`), from one scan
    pruned to their dates; a window without rows maps to an empty frame."""
    starts = sorted({as_utc(w, "window_start") for w in window_starts})
    columns = _empty(schema).columns
    rows = None
    if starts and (table := try_open(table_uri)) is not None:
        rows = (
            pl.scan_delta(table)
            .filter(
                pl.col(WINDOW_DATE.name).is_in(sorted({w.date() for w in starts})),
                pl.col("window_start").is_in(starts),
            )
            .select(columns)
            .collect()
        )
    return _by_window(rows, starts, schema)


def _empty(schema: pa.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=pl.from_arrow(schema.empty_table()).schema)  # type: ignore[union-attr]


def _by_window(
    rows: pl.DataFrame | None, starts: list[datetime], schema: pa.Schema
) -> dict[datetime, pl.DataFrame]:
    """`rows` split by window, each in `schema`'s types, as a read returns them."""
    empty = _empty(schema)
    found: dict[datetime, pl.DataFrame] = {}
    if rows is not None and rows.height:
        found = {
            key[0]: part
            for key, part in rows.partition_by("window_start", as_dict=True).items()  # type: ignore[misc]
        }
    return {
        w: pl.concat([empty, found[w]], how="vertical_relaxed") if w in found else empty
        for w in starts
    }


def first_window(table_uri: str) -> datetime | None:
    """The earliest `window_start` of a per-window table; None when it has none."""
    if (table := try_open(table_uri)) is None:
        return None
    first = pl.scan_delta(table).select(pl.col("window_start").min()).collect().item()
    return None if first is None else as_utc(first, "window_start")


def _conform(frame: pl.DataFrame, *, window_starts: list[datetime], schema: pa.Schema) -> pa.Table:
    if "window_start" not in frame.columns:
        if len(window_starts) != 1 and not frame.is_empty():
            raise ValueError("the frame lacks a `window_start` column to tell its windows apart")
        frame = frame.with_columns(window_start=pl.lit(window_starts[0], WINDOW_START))
    start = pl.col("window_start").cast(WINDOW_START)
    known = pl.Series(window_starts, dtype=WINDOW_START).implode()
    if others := frame.filter(start.is_null() | ~start.is_in(known)).height:
        shown = ", ".join(w.isoformat() for w in window_starts[:3])
        more = f" and {len(window_starts) - 3} more" if len(window_starts) > 3 else ""
        raise ValueError(f"{others} row(s) belong to another window than {shown}{more}")
    missing = [f.name for f in schema if f.name not in frame.columns and not f.nullable]
    if missing:
        raise ValueError(f"the frame lacks required column(s) {', '.join(missing)}")
    full = schema.append(WINDOW_DATE)
    types = pl.from_arrow(full.empty_table()).schema  # type: ignore[union-attr]
    frame = frame.with_columns(start.dt.date().alias(WINDOW_DATE.name))
    return (
        frame.select(
            pl.col(n).cast(t) if n in frame.columns else pl.lit(None, t).alias(n)
            for n, t in types.items()
        )
        .to_arrow()
        .cast(full)
    )
