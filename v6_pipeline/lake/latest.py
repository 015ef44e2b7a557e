"""`read_latest`: the latest `position_updates` row per (account, conid) as of a time.

Design. The cost of a run must follow what was written since the last run, not all of
history, and the answer must equal a full scan exactly, whatever order events arrive in.

- The Delta log lists the table's data files. A checkpoint (see `checkpoint.py`) records
  the files it has seen at table version V, and, for a cutoff T, the latest row per key
  with `timestamp <= T` (the state) plus every row with `timestamp > T` (the tail).
- For `as_of >= T`, the answer is the latest per key over the checkpoint's rows and the
  rows of files added since V, both cut at `as_of`. That is exact: the rows the checkpoint
  dropped are older than a kept row of the same key and both are `<= T <= as_of`. A late
  event (old timestamp, written after V) is just a row of a new file; the comparison is
  by timestamp, never by arrival. New files whose minimum timestamp (a Delta file
  statistic) is after `as_of` are not opened; only keys with candidate rows are re-judged.
- When the rows waiting in new files pass a threshold, the checkpoint is refreshed with
  cutoff `min(newest timestamp, max(as_of, newest - TAIL_HORIZON))`: the read's `as_of`
  for a live run, close to the newest row after a backfill (so the tail stays small). A
  checkpoint is written atomically in one Delta commit; failing to write it is logged,
  never fails the read.
- `as_of < T` (a backfill of an old window) cannot use the checkpoint: the files with a
  minimum timestamp `<= as_of` are read and cut at `as_of`. Cost follows the history
  before `as_of`; the checkpoint is left alone.
- If a file the checkpoint counted is gone (compaction, delete, merge rewrite, overwrite),
  or the table was re-created, the checkpoint is rebuilt from a full read: slower once,
  never wrong.
- Ties on (account, conid, timestamp), which the project's writer never makes: the row
  written last wins, judged by the file's write time in the Delta log (then its path and
  the row's place in it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import polars as pl

from v6_pipeline.lake import checkpoint
from v6_pipeline.lake.checkpoint import Checkpoint
from v6_pipeline.lake.paths import checkpoint_uri
from v6_pipeline.lake.source import KEY, OUTPUT, SEQ, PositionLog
from v6_pipeline.lake.times import as_utc

log = logging.getLogger(__name__)

# Refresh the checkpoint once this much waits in files added after it: each read then
# costs at most about this much beyond the checkpoint's own row per key.
REFRESH_ROWS = 50_000
REFRESH_FILES = 200
# A checkpoint's cutoff is at most this far behind the newest row, even when it is built
# by a backfill: what lies after the cutoff is kept row by row.
TAIL_HORIZON = timedelta(hours=1)


def read_latest(
    table_uri: str, *, as_of: datetime, default_account: str | None = None
) -> pl.DataFrame:
    """For each (account, conid), the row with the greatest `timestamp <= as_of`.

    Columns are those of `POSITION_UPDATES`, rows ordered by (account, conid). A table
    from the earlier writer (no `account`) needs `default_account`, which also fills
    rows written without one.
    """
    as_of = as_utc(as_of, "as_of")
    source = PositionLog.open(table_uri, default_account=default_account)
    store = checkpoint_uri(table_uri)
    saved = checkpoint.load(store)
    if saved is not None and not saved.serves(source):
        log.info("%s changed beyond appends since its checkpoint; rebuilding it", table_uri)
        saved = None

    if saved is None:
        rows = source.scan(source.files, seq_start=0)
        newest = source.newest()
        counted = source.files["num_records"].null_count() == 0
    elif as_of < saved.cutoff:  # a backfill: older than the checkpoint can answer
        files = source.files.filter(pl.col("min_ts").is_null() | (pl.col("min_ts") <= as_of))
        return _latest(source.scan(files, seq_start=0), as_of).collect()
    else:
        added = source.files.filter(~pl.col("path").is_in(list(saved.files)))
        # Files without a row count cannot be judged small: they trigger a refresh.
        waiting = int(added["num_records"].fill_null(REFRESH_ROWS).sum())
        if waiting < REFRESH_ROWS and added.height < REFRESH_FILES:
            return _steady(source, saved, added, as_of)
        rows = pl.concat([saved.rows.lazy(), source.scan(added, seq_start=saved.next_seq)])
        newest, counted = None, False

    if newest is None:  # not in the log's statistics: from the rows themselves
        newest = rows.select(pl.col("timestamp").max()).collect().item()
    cutoff = as_of if newest is None else min(newest, max(as_of, newest - TAIL_HORIZON))
    tail = rows
    if counted:  # read the rows after the cutoff only from files that can hold them
        files = source.files.filter(pl.col("max_ts").is_null() | (pl.col("max_ts") > cutoff))
        tail = source.scan(files, seq_start=int(source.files["num_records"].sum()))
    queries = [_state_and_tail(rows, tail, cutoff)]
    if as_of < cutoff:
        queries.append(_latest(rows, as_of))
    kept, *answer = pl.collect_all(queries)
    fresh = Checkpoint(
        source_id=source.source_id,
        version=source.version,
        cutoff=cutoff,
        default_account=source.default_account,
        files=frozenset(source.files["path"].to_list()),
        rows=kept,
    )
    checkpoint.save(store, fresh)
    return answer[0] if answer else _latest(kept.lazy(), as_of).collect()


def _steady(
    source: PositionLog, saved: Checkpoint, added: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    """The answer from a checkpoint and the few files added since, re-judging only the
    keys that have rows after the checkpoint's cutoff."""
    after = pl.col("timestamp") > saved.cutoff
    state = saved.rows.filter(~after)  # one row per key
    opened = added.filter(pl.col("min_ts").is_null() | (pl.col("min_ts") <= as_of))
    candidates = pl.concat(
        [saved.rows.filter(after), source.read(opened, seq_start=saved.next_seq)]
    ).filter(pl.col("timestamp") <= as_of)
    if candidates.is_empty():
        return state.select(*OUTPUT).sort(KEY)
    keys = candidates.select(KEY).unique()
    judged = _latest(
        pl.concat([state.join(keys, on=KEY, how="semi"), candidates]).lazy(), as_of
    ).collect()
    return pl.concat([state.join(keys, on=KEY, how="anti").select(*OUTPUT), judged]).sort(KEY)


def _latest(rows: pl.LazyFrame, as_of: datetime) -> pl.LazyFrame:
    """The latest row per key among `rows` with `timestamp <= as_of` (no `_seq`)."""
    return _latest_with_seq(rows.filter(pl.col("timestamp") <= as_of)).select(*OUTPUT).sort(KEY)


def _latest_with_seq(rows: pl.LazyFrame) -> pl.LazyFrame:
    newest = rows.group_by(KEY).agg(pl.col("timestamp").max())
    return (
        rows.join(newest, on=[*KEY, "timestamp"], how="semi")
        # Ties only come from other writers: the row written last wins.
        .filter(pl.col(SEQ) == pl.col(SEQ).max().over(KEY))
    )


def _state_and_tail(rows: pl.LazyFrame, tail: pl.LazyFrame, cutoff: datetime) -> pl.LazyFrame:
    """A checkpoint's rows: the latest per key up to `cutoff`, then every row after it.

    `tail` holds at least every row of `rows` after `cutoff`, numbered after all of them.
    """
    early = pl.col("timestamp") <= cutoff
    return pl.concat([_latest_with_seq(rows.filter(early)), tail.filter(~early)])
