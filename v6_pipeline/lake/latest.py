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
  never wrong. So is a checkpoint that cannot be read or is not whole (see `checkpoint.py`).
- The steady read does not open the table: it reads the commit files written after the
  checkpoint's version (see `commits.py`), and opens the table only when those did more
  than add files. Opening replays the whole log, which costs more than the rest of the
  read once the table has thousands of files.
- Every row read is checked: a null key or a non-finite position fails the read with
  `BadRowsError` (an example row named), never a verdict on bad data. What is checked
  is what is read: the files added since the checkpoint (whose rows were checked when it
  was built), or all of history when it is rebuilt.
- Ties on (account, conid, timestamp), which the project's writer never makes: two rows
  with the same quantity are one fact (the row written last is kept, judged by the file's
  write time in the Delta log, then its path and the row's place in it); two different
  quantities make the history ambiguous, and an answer that depends on it raises
  `AmbiguousHistoryError` naming the key and both quantities, never a silent pick by row
  order. The kept row carries the other quantity (`_tie`), through the checkpoint too, so
  a tie is seen however its rows were read; a newer row of the key settles it.

Many times at once (`read_latest_many`, `iter_latest`: a backfill of a day is 288 windows).
The rows are read once: from the checkpoint when every time is at or after its cutoff,
else from the files with a minimum timestamp up to the latest time; a checkpoint built or
refreshed is cut as for a read at the latest time. Each row goes to the window
`(a[k-1], a[k]]` of the sorted distinct times that holds its timestamp (rows up to `a[0]`
to the first), and one group-by keeps the latest row per (window, key). Then a sweep in
time order: the answer at `a[k]` is the answer at `a[k-1]` with the keys of window k
replaced by that window's rows, which are newer than anything before. Each step costs the
keys plus the window's rows; history is never re-read or held per window. `read_latest`
is the sweep over one time. From a checkpoint, only the keys with rows in its tail or in
new files enter the windows: each answer is the checkpoint's state (kept in key order)
with those keys' rows merged in by binary search, so no read sorts every key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from itertools import chain

import polars as pl

from v6_pipeline.lake import checkpoint
from v6_pipeline.lake.checkpoint import Checkpoint
from v6_pipeline.lake.errors import AmbiguousHistoryError
from v6_pipeline.lake.paths import checkpoint_uri
from v6_pipeline.lake.source import (
    OUTPUT,
    POSITION_KEY,
    SEQ,
    TIE,
    PositionLog,
    bad_rows,
    identities,
    raise_bad_rows,
)
from v6_pipeline.lake.times import as_utc

log = logging.getLogger(__name__)

# Refresh the checkpoint once this much waits in files added after it: each read then
# costs at most about this much beyond the checkpoint's own row per key.
REFRESH_ROWS = 50_000
REFRESH_FILES = 200
# A checkpoint's cutoff is at most this far behind the newest row, even when it is built
# by a backfill: what lies after the cutoff is kept row by row.
TAIL_HORIZON = timedelta(hours=1)

# The index of the first sorted `as_of` at or after a row's timestamp: the as-of window
# the row belongs to.
AS_OF_WINDOW_COL = "_window"

Answers = Iterator[tuple[datetime, pl.DataFrame]]

# The engine for queries over a few thousand rows: the streaming one costs more to start.
SMALL = "in-memory"


def read_latest(
    table_uri: str, *, as_of: datetime, default_account: str | None = None
) -> pl.DataFrame:
    """For each (account, conid), the row with the greatest `timestamp <= as_of`.

    Columns are those of `POSITION_UPDATES`, rows ordered by (account, conid). A table
    from the earlier writer (no `account`) needs `default_account`, which also fills
    rows written without one.
    """
    return read_latest_many(table_uri, as_ofs=[as_of], default_account=default_account)[0]


def read_latest_many(
    table_uri: str, *, as_ofs: Sequence[datetime], default_account: str | None = None
) -> list[pl.DataFrame]:
    """`[read_latest(table_uri, as_of=a, ...) for a in as_ofs]`, reading the history once.

    Any order, duplicates allowed; no times give an empty list (the table is still
    checked). Holds every answer at once: `iter_latest` yields them one by one.
    """
    times = [as_utc(a, "as_of") for a in as_ofs]
    answers = dict(iter_latest(table_uri, as_ofs=times, default_account=default_account))
    # A copy per entry: a caller changing one answer in place must not change a duplicate.
    return [answers[a].clone() for a in times]


def iter_latest(
    table_uri: str, *, as_ofs: Sequence[datetime], default_account: str | None = None
) -> Answers:
    """`(as_of, read_latest(table_uri, as_of=as_of, ...))` for each distinct time of
    `as_ofs`, in time order.

    The table is read (and errors raised) before this returns; each answer is built only
    when it is asked for, so a caller keeping one at a time holds one.
    """
    times = sorted({as_utc(a, "as_of") for a in as_ofs})
    if not times:  # nothing to answer, but the table is checked all the same
        PositionLog.open(table_uri, default_account=default_account)
        return iter(())
    return chain.from_iterable(_sweeps(table_uri, times, default_account))


def _sweeps(uri: str, as_ofs: list[datetime], default_account: str | None) -> list[Answers]:
    """The answers at `as_ofs` (sorted, distinct, not empty), as consecutive sweeps."""
    last = as_ofs[-1]
    store = checkpoint_uri(uri)
    saved = checkpoint.load(store)
    source = None
    if saved is not None and saved.default_account == default_account and as_ofs[0] >= saved.cutoff:
        source = PositionLog.after(uri, saved.source, default_account=default_account)
    if source is None:
        source = PositionLog.open(uri, default_account=default_account)
    if saved is not None and not saved.serves(source):
        log.info("%s changed beyond appends since its checkpoint; rebuilding it", uri)
        saved = None

    if saved is None:
        return _build(source, store, as_ofs, saved=None, added=source.files)
    if as_ofs[0] < saved.cutoff:  # a backfill: older than the checkpoint can answer
        files = source.files.filter(pl.col("min_ts").is_null() | (pl.col("min_ts") <= last))
        rows = source.scan(files, seq_start=0)
        windows, summary = pl.collect_all([_by_window(rows, as_ofs), bad_rows(rows)])
        raise_bad_rows(uri, summary)
        return [_sweep(uri, windows, as_ofs)]
    added = saved.added(source)
    # Files without a row count cannot be judged small: they trigger a refresh.
    waiting = int(added["num_records"].fill_null(REFRESH_ROWS).sum())
    if waiting < REFRESH_ROWS and added.height < REFRESH_FILES:
        return [_steady(source, saved, added, as_ofs)]
    return _build(source, store, as_ofs, saved=saved, added=added)


def _build(
    source: PositionLog,
    store: str,
    as_ofs: list[datetime],
    *,
    saved: Checkpoint | None,
    added: pl.DataFrame,
) -> list[Answers]:
    """The answers from rows read anew, and the checkpoint they make: from every file
    (no `saved` checkpoint), or from `saved` and the files `added` after it (a refresh)."""
    last = as_ofs[-1]
    fresh = source.scan(added, seq_start=0 if saved is None else saved.next_seq)
    if saved is None:
        rows, files = fresh, source.files["path"]
        newest = source.newest()
        counted = source.files["num_records"].null_count() == 0
    else:
        rows = pl.concat([saved.rows.lazy(), fresh])
        files = pl.concat([saved.files, added["path"]])
        newest, counted = None, False

    if newest is None:  # not in the log's statistics: from the rows themselves
        newest = rows.select(pl.col("timestamp").max()).collect().item()
    cutoff = last if newest is None else min(newest, max(last, newest - TAIL_HORIZON))
    tail = rows
    if counted:  # read the rows after the cutoff only from files that can hold them
        files_after = source.files.filter(pl.col("max_ts").is_null() | (pl.col("max_ts") > cutoff))
        tail = source.scan(files_after, seq_start=int(source.files["num_records"].sum()))
    # Times before the cutoff are answered from the rows as read, the others from the
    # checkpoint being built (one row per key, far smaller).
    early = [a for a in as_ofs if a < cutoff]
    late = as_ofs[len(early) :]
    early_rows = pl.col("timestamp") <= cutoff
    queries = [
        bad_rows(fresh),
        # In key order: what a steady read merges into (see `_sweep`).
        _latest_with_seq(rows.filter(early_rows), by=POSITION_KEY).sort(POSITION_KEY),
        # `tail` holds at least every row of `rows` after `cutoff`, numbered after them all.
        tail.filter(~early_rows),
    ]
    if early:
        queries.append(_by_window(rows, early))
    summary, state, after, *history = pl.collect_all(queries)
    raise_bad_rows(source.uri, summary)
    built = Checkpoint(
        source=source.at,
        cutoff=cutoff,
        default_account=source.default_account,
        files=files,
        state=state,
        tail=after,
    )
    checkpoint.save(store, built)
    sweeps = [_sweep(source.uri, windows, early) for windows in history]
    if late:
        sweeps.append(_steady(source, built, added.clear(), late))
    return sweeps


def _steady(
    source: PositionLog, saved: Checkpoint, added: pl.DataFrame, as_ofs: list[datetime]
) -> Answers:
    """The answers from a checkpoint and the few files added since, re-judging only the
    keys that have rows after the checkpoint's cutoff."""
    opened = added.filter(pl.col("min_ts").is_null() | (pl.col("min_ts") <= as_ofs[-1]))
    fresh = source.scan(opened, seq_start=saved.next_seq).collect()
    raise_bad_rows(source.uri, bad_rows(fresh.lazy()).collect(engine=SMALL))
    candidates = pl.concat([saved.tail, fresh])
    keys = candidates.select(POSITION_KEY).unique()
    judged = pl.concat([saved.state.join(keys, on=POSITION_KEY, how="semi"), candidates])
    windows = _by_window(judged.lazy(), as_ofs).collect(engine=SMALL)
    return _sweep(source.uri, windows, as_ofs, base=saved.state.select(*OUTPUT, TIE))


def _by_window(rows: pl.LazyFrame, as_ofs: list[datetime]) -> pl.LazyFrame:
    """The latest row per key of each window of `as_ofs` (sorted, distinct): window k
    holds the rows with `a[k-1] < timestamp <= a[k]`, window 0 every row up to `a[0]`."""
    bounds = pl.Series(as_ofs, dtype=OUTPUT["timestamp"])
    windowed = rows.filter(pl.col("timestamp") <= as_ofs[-1]).with_columns(
        pl.lit(bounds).search_sorted(pl.col("timestamp"), side="left").alias(AS_OF_WINDOW_COL)
    )
    return _latest_with_seq(windowed, by=[AS_OF_WINDOW_COL, *POSITION_KEY])


def _sweep(
    uri: str, windows: pl.DataFrame, as_ofs: list[datetime], *, base: pl.DataFrame | None = None
) -> Answers:
    """The answer at each of `as_ofs` from `_by_window` over them, in time order.

    `base`: one row per key, in key order, each at or before `as_ofs[0]`: every answer is
    `base` with the rows `windows` gives in place of (or beside) its rows. Sorting only the
    few rows of `windows` spares a sort of every key per read.
    """
    # Sorted, a key's rows are adjacent and keys come in answer order: an answer is a
    # gather of each key's current row, in key order, with no join or sort per step.
    rows = windows.select(*OUTPUT, TIE, AS_OF_WINDOW_COL).sort(*POSITION_KEY, AS_OF_WINDOW_COL)
    numbered = rows.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        (pl.struct(POSITION_KEY).is_first_distinct().cum_sum() - 1).alias("key"),
        AS_OF_WINDOW_COL,
    )
    changes = numbered.partition_by(AS_OF_WINDOW_COL, as_dict=True, include_key=False)
    current = pl.repeat(-1, numbered["key"].n_unique(), dtype=pl.Int64, eager=True)  # row per key
    data = rows.select(*OUTPUT, TIE)
    latest = data.clear() if base is None else base
    keys = None if base is None else base.select(pl.struct(POSITION_KEY)).to_series()
    for k, as_of in enumerate(as_ofs):
        if (changed := changes.get((k,))) is not None:
            # Window k's rows are newer than those of earlier windows: they replace them.
            current.scatter(changed["key"], changed["row"])
            latest = data[current.filter(current >= 0)]
            if base is not None and keys is not None:
                latest = _overlay(base, keys, latest)
        yield as_of, _unambiguous(uri, as_of, latest)


def _unambiguous(uri: str, as_of: datetime, latest: pl.DataFrame) -> pl.DataFrame:
    """An answer without its `_tie` column, once no row of it is ambiguous (a new frame:
    a caller changing it in place must not change the next answer)."""
    tied = latest.filter(pl.col(TIE).is_not_null())
    if not tied.is_empty():
        raise AmbiguousHistoryError(
            uri, as_of, tied.select(*POSITION_KEY, "timestamp", "position", TIE).rows()
        )
    return latest.drop(TIE)


def _overlay(base: pl.DataFrame, keys: pl.Series, rows: pl.DataFrame) -> pl.DataFrame:
    """`base` (one row per key, in key order; `keys` its keys as structs) with `rows` (one
    per key, in key order) in place of its rows of the same keys, and inserted in key order
    where it has none: a merge by binary search, not a sort, copying `base` once."""
    wanted = rows.select(pl.struct(POSITION_KEY)).to_series()
    at = keys.search_sorted(wanted, side="left").cast(pl.Int64)  # base rows before each
    new = (keys.search_sorted(wanted, side="right").cast(pl.Int64) == at).cast(pl.Int64)
    # Each row of `rows` lands after the base rows before it and the new rows before it.
    places = at + new.cum_sum() - new
    answer = base
    if new.sum():  # the base rows move down past the new rows inserted before them
        size = base.height
        before = at.filter(new.cast(pl.Boolean)).search_sorted(
            pl.int_range(size, eager=True), side="right"
        )
        spread = pl.repeat(None, size + new.sum(), dtype=pl.Int64, eager=True)
        places_of_base = pl.int_range(size, dtype=pl.Int64, eager=True)
        spread.scatter(places_of_base + before, places_of_base)
        answer = base.select(pl.all().gather(spread))  # null rows: the places of new rows
    columns = answer.get_columns()
    del answer  # then a gathered column is written in place, not copied again
    return pl.DataFrame([c.scatter(places, rows[c.name]) for c in columns])


def _latest_with_seq(rows: pl.LazyFrame, *, by: list[str]) -> pl.LazyFrame:
    """The latest row per `by`: of rows tied at its timestamp, the one written last, with
    `_tie` set to another quantity among them (or one its rows already carried)."""
    newest = rows.group_by(by).agg(pl.col("timestamp").max())
    low, high = pl.col("_low"), pl.col("_high")
    return (
        rows.join(newest, on=[*by, "timestamp"], how="semi")
        .with_columns(
            _low=pl.min_horizontal("position", TIE).min().over(by),
            _high=pl.max_horizontal("position", TIE).max().over(by),
        )
        # Ties only come from other writers: the row written last is kept.
        .filter(pl.col(SEQ) == pl.col(SEQ).max().over(by))
        .with_columns(
            pl.when(low != high)
            .then(pl.when(pl.col("position") == low).then(high).otherwise(low))
            .alias(TIE),
            *identities(),
        )
        .drop("_low", "_high")
    )
