"""`read_latest` on real Delta tables: the as-of answer, and its checkpoint."""

from __future__ import annotations

import os
import threading
from datetime import datetime

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from v6_pipeline.lake import AmbiguousHistoryError, checkpoint, latest, read_latest, schemas
from v6_pipeline.lake.paths import checkpoint_uri
from v6_pipeline.lake.source import STATS_PRECISION
from v6_pipeline.lake.updates import create_position_updates


def positions(frame: pl.DataFrame) -> dict[tuple[str, int], tuple[float, datetime]]:
    return {
        (r["account"], r["conid"]): (r["position"], r["timestamp"])
        for r in frame.iter_rows(named=True)
    }


def test_latest_row_per_key_and_rows_after_as_of_ignored(updates_uri, append, minute):
    append([("A", 1, 5, 0), ("A", 1, 7, 10), ("A", 2, 1, 3)])
    append([("A", 1, 9, 30), ("A", 3, 4, 31)])  # after as_of: do not exist for this read

    got = read_latest(updates_uri, as_of=minute(20))

    assert positions(got) == {("A", 1): (7.0, minute(10)), ("A", 2): (1.0, minute(3))}
    assert got.schema == schemas.polars_schema(schemas.POSITION_UPDATES)


def test_a_row_at_exactly_as_of_counts(updates_uri, append, minute):
    append([("A", 1, 5, 0), ("A", 1, 6, 20)])
    assert positions(read_latest(updates_uri, as_of=minute(20))) == {("A", 1): (6.0, minute(20))}


def test_closed_latest_row_is_returned_with_zero(updates_uri, append, minute):
    append([("A", 1, 5, 0), ("A", 1, 0, 10)])
    assert positions(read_latest(updates_uri, as_of=minute(20))) == {("A", 1): (0.0, minute(10))}


def test_one_conid_in_two_accounts_is_two_positions(updates_uri, append, minute):
    append([("A", 1, 5, 0), ("B", 1, -2, 1), ("A", 1, 6, 2)])
    assert positions(read_latest(updates_uri, as_of=minute(20))) == {
        ("A", 1): (6.0, minute(2)),
        ("B", 1): (-2.0, minute(1)),
    }


def test_late_rows_written_after_the_checkpoint(updates_uri, append, minute, expected):
    append([("A", 1, 5, 0), ("A", 1, 7, 10), ("A", 2, 1, 0)])
    read_latest(updates_uri, as_of=minute(20))  # builds the checkpoint at cutoff minute 10
    # Late: older than key 1's checkpointed row (must lose), newer than key 2's (must win).
    append([("A", 1, 99, 5), ("A", 2, 3, 8)])

    got = read_latest(updates_uri, as_of=minute(25))

    assert positions(got) == {("A", 1): (7.0, minute(10)), ("A", 2): (3.0, minute(8))}
    assert got.equals(expected(updates_uri, minute(25)))


def test_as_of_before_the_checkpoint_backfills_exactly(updates_uri, append, minute, expected):
    append([("A", 1, 5, 0), ("A", 1, 7, 10), ("A", 2, 1, 12)])
    read_latest(updates_uri, as_of=minute(20))
    append([("A", 1, 8, 4)])  # late, and inside the backfilled window

    got = read_latest(updates_uri, as_of=minute(6))

    assert positions(got) == {("A", 1): (8.0, minute(4))}
    assert got.equals(expected(updates_uri, minute(6)))


def test_steady_read_does_not_open_files_the_checkpoint_covers(updates_uri, append, minute):
    append([("A", 1, 5, 0), ("A", 2, 1, 1)])
    read_latest(updates_uri, as_of=minute(10))
    covered = DeltaTable(updates_uri).file_uris()
    append([("A", 2, 4, 12)])
    for path in covered:  # were they read, this read would fail
        os.remove(path)

    got = read_latest(updates_uri, as_of=minute(15))

    assert positions(got) == {("A", 1): (5.0, minute(0)), ("A", 2): (4.0, minute(12))}
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        read_latest(updates_uri, as_of=minute(0.5))  # before the cutoff: reads history


def test_checkpoint_refreshes_and_stays_exact(updates_uri, append, minute, expected, monkeypatch):
    monkeypatch.setattr(latest, "REFRESH_ROWS", 3)
    append([("A", 1, 5, 0), ("A", 2, 1, 1)])
    read_latest(updates_uri, as_of=minute(10))
    first = checkpoint.load(checkpoint_uri(updates_uri))
    append([("A", 1, 6, 11), ("A", 2, 2, 12), ("A", 3, 3, 40)])  # one row beyond as_of

    got = read_latest(updates_uri, as_of=minute(20))
    refreshed = checkpoint.load(checkpoint_uri(updates_uri))

    assert first is not None
    assert refreshed is not None
    # The first cutoff is the newest row by the log's (millisecond) statistics, rounded up.
    assert (first.cutoff, refreshed.cutoff) == (minute(1) + STATS_PRECISION, minute(20))
    assert refreshed.source.version > first.source.version
    assert got.equals(expected(updates_uri, minute(20)))
    # The row beyond the cutoff was kept: a later read still sees it.
    assert read_latest(updates_uri, as_of=minute(45)).equals(expected(updates_uri, minute(45)))


@pytest.mark.parametrize("change", ["compact", "delete", "update"])
def test_rewritten_files_rebuild_the_checkpoint(updates_uri, append, minute, expected, change):
    append([("A", 1, 5, 0), ("A", 2, 1, 1)])
    append([("A", 1, 6, 2), ("A", 3, 1, 3)])
    read_latest(updates_uri, as_of=minute(10))
    table = DeltaTable(updates_uri)
    if change == "compact":
        table.optimize.compact()
    elif change == "delete":
        table.delete("conid = 1 AND position = 6")
    else:
        table.update(updates={"position": "42"}, predicate="conid = 3")
    append([("A", 2, 2, 4)])

    assert read_latest(updates_uri, as_of=minute(10)).equals(expected(updates_uri, minute(10)))


def test_a_recreated_table_is_not_answered_from_the_old_checkpoint(updates_uri, append, minute):
    append([("A", 1, 5, 0)])
    read_latest(updates_uri, as_of=minute(10))
    write_deltalake(
        updates_uri,
        pl.DataFrame(schema=schemas.polars_schema(schemas.POSITION_UPDATES)).to_arrow(),
        mode="overwrite",
    )
    DeltaTable(updates_uri).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )

    assert read_latest(updates_uri, as_of=minute(10)).is_empty()


def test_the_same_row_written_twice_is_one_fact(updates_uri, append, minute):
    append([("A", 1, 5, 3)])
    append([("A", 1, 5, 3)])
    assert positions(read_latest(updates_uri, as_of=minute(10))) == {("A", 1): (5.0, minute(3))}
    append([("A", 1, 5, 3)])  # and on top of a checkpoint
    assert positions(read_latest(updates_uri, as_of=minute(10))) == {("A", 1): (5.0, minute(3))}


def _ambiguous(updates_uri: str, as_of) -> str:
    with pytest.raises(AmbiguousHistoryError) as caught:
        read_latest(updates_uri, as_of=as_of)
    return str(caught.value)


def test_two_quantities_at_one_time_are_ambiguous_never_picked_by_row_order(
    updates_uri, append, minute
):
    append([("A", 1, -2, 3), ("A", 2, 1, 3)])
    append([("A", 1, 0, 3)])  # was the leg closed at 3, or is it -2?

    message = _ambiguous(updates_uri, minute(10))  # the checkpoint's first build
    assert "account A conid 1 has two quantities, -2 and 0, at the same timestamp" in message
    assert "delete or correct the wrong row" in message
    assert _ambiguous(updates_uri, minute(10)) == message  # and from the checkpoint after
    assert (
        positions(read_latest(updates_uri, as_of=minute(2))) == {}
    )  # before: no answer hangs on it

    append([("A", 1, 7, 3)])  # a third writer on top of the checkpoint: still ambiguous
    assert "account A conid 1 has two quantities" in _ambiguous(updates_uri, minute(10))
    append([("A", 1, 4, 5)])  # a newer row settles the key
    assert positions(read_latest(updates_uri, as_of=minute(10)))[("A", 1)] == (4.0, minute(5))
    assert "conid 1" in _ambiguous(updates_uri, minute(4))  # a backfill before it: not settled


def test_a_late_row_tying_a_checkpointed_row_is_ambiguous(updates_uri, append, minute):
    append([("A", 1, -2, 3)])
    assert positions(read_latest(updates_uri, as_of=minute(10))) == {("A", 1): (-2.0, minute(3))}
    append([("A", 1, 0, 3)])  # written after the checkpoint, at the checkpointed row's time
    assert "two quantities, -2 and 0" in _ambiguous(updates_uri, minute(10))


def test_legacy_table_without_account_or_sec_type(updates_uri, rows, minute):
    legacy = rows([("", 1, 5, 0), ("", 1, 2, 5), ("", 2, 3, 1)]).drop("account", "sec_type")
    write_deltalake(updates_uri, legacy.to_arrow(), partition_by=["symbol"])

    got = read_latest(updates_uri, as_of=minute(10), default_account="DU999")

    assert positions(got) == {("DU999", 1): (2.0, minute(5)), ("DU999", 2): (3.0, minute(1))}
    assert got["sec_type"].null_count() == 2
    assert got.schema == schemas.polars_schema(schemas.POSITION_UPDATES)


def test_default_account_fills_rows_written_without_one(updates_uri, rows, minute):
    frame = rows([("A", 1, 5, 0), ("A", 2, 3, 1)]).with_columns(
        account=pl.when(pl.col("conid") == 2).then(None).otherwise(pl.col("account"))
    )
    write_deltalake(updates_uri, frame.to_arrow())

    got = read_latest(updates_uri, as_of=minute(10), default_account="DU999")

    assert positions(got) == {("A", 1): (5.0, minute(0)), ("DU999", 2): (3.0, minute(1))}


def test_empty_table_gives_an_empty_frame(updates_uri, minute):
    create_position_updates(updates_uri)
    got = read_latest(updates_uri, as_of=minute(0))
    assert got.is_empty()
    assert got.schema == schemas.polars_schema(schemas.POSITION_UPDATES)


def test_naive_as_of_is_refused(updates_uri, append):
    append([("A", 1, 5, 0)])
    with pytest.raises(ValueError, match="timezone-aware"):
        read_latest(updates_uri, as_of=datetime(2026, 1, 5, 14, 0))  # noqa: DTZ001


def test_failing_checkpoint_write_does_not_fail_the_read(
    updates_uri, append, minute, expected, monkeypatch
):
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refuse)
    append([("A", 1, 5, 0)])

    assert read_latest(updates_uri, as_of=minute(10)).equals(expected(updates_uri, minute(10)))
    assert checkpoint.load(checkpoint_uri(updates_uri)) is None


def test_concurrent_appends_and_readers(updates_uri, append, minute, expected):
    append([(a, c, c, c % 7) for a in "AB" for c in range(30)])
    as_of = minute(10)
    want = expected(updates_uri, as_of)
    stop = threading.Event()
    errors: list[BaseException] = []
    results: list[pl.DataFrame] = []

    def write() -> None:
        step = 0
        while not stop.is_set():  # a streamer writing after the snapshot
            step += 1
            append([("A", step % 30, step, 11 + step)])

    def read() -> None:
        try:
            results.extend(read_latest(updates_uri, as_of=as_of) for _ in range(5))
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read) for _ in range(2)]
    writer.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    writer.join()

    assert errors == []
    assert len(results) == 10
    assert all(r.equals(want) for r in results)
    assert checkpoint.load(checkpoint_uri(updates_uri)) is not None
    assert read_latest(updates_uri, as_of=minute(10_000)).equals(
        expected(updates_uri, minute(10_000))
    )


def test_a_backfill_that_builds_the_checkpoint_keeps_its_tail_short(
    updates_uri, append, minute, expected, monkeypatch
):
    monkeypatch.setattr(latest, "TAIL_HORIZON", minute(10) - minute(0))
    append([("A", c, c, 10 * c) for c in range(10)])  # minutes 0..90

    got = read_latest(updates_uri, as_of=minute(25))  # the first read is a backfill
    saved = checkpoint.load(checkpoint_uri(updates_uri))

    assert got.equals(expected(updates_uri, minute(25)))
    assert saved is not None
    # Not minute 25: the live runs after it stay cheap.
    assert saved.cutoff == minute(80) + STATS_PRECISION
    assert saved.rows.height == 10
    assert read_latest(updates_uri, as_of=minute(85)).equals(expected(updates_uri, minute(85)))
