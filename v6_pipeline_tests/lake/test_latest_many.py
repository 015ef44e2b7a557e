"""`read_latest_many` (and `iter_latest`): one read for many `as_of`s, each answer exactly
`read_latest`'s."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v6_pipeline.lake import (
    AmbiguousHistoryError,
    BadRowsError,
    Lake,
    TableNotFoundError,
    checkpoint,
    iter_latest,
    latest,
    read_latest,
    read_latest_many,
)
from v6_pipeline.lake.paths import checkpoint_uri
from v6_pipeline.lake.source import STATS_PRECISION, PositionLog
from v6_pipeline.lake.updates import append_position_updates
from v6_pipeline_tests.lake.support import COLUMNS, T0, ambiguous_keys, history_frame

LEGACY_ACCOUNT = "DU9"
Expected = Callable[[str, datetime], pl.DataFrame]

# Few distinct microseconds: rows tie on (account, conid, timestamp) and sit exactly at an
# `as_of` often.
micros = st.sampled_from([0, 1, 999])
row = st.tuples(
    st.sampled_from(["DU1", "DU2"]),  # account (dropped in a legacy table)
    st.integers(1, 4),  # conid
    st.integers(-2, 2),  # position; 0 = closed
    st.integers(0, 60),  # minute: any order, so late rows are common
    micros,
)
as_of = st.tuples(st.integers(-1, 62), micros)
step = st.one_of(
    st.tuples(st.just("append"), st.lists(row, min_size=1, max_size=5)),
    st.tuples(st.just("upsert"), st.lists(row, min_size=1, max_size=3)),
    st.tuples(st.just("read"), as_of),
    st.tuples(st.just("many"), st.lists(as_of, min_size=1, max_size=6)),
    st.tuples(st.just("compact"), st.none()),
)


def time_of(spec: tuple[int, int]) -> datetime:
    return T0 + timedelta(minutes=spec[0], microseconds=spec[1])


def assert_many_equals_singles(uri: str, as_ofs: list[datetime], account: str | None) -> None:
    # An ambiguous answer (two quantities at one key's latest time) fails the whole read,
    # at the first such time, with the keys a single read at that time names.
    ambiguous = {
        a: keys
        for a in sorted(as_ofs)
        if (keys := ambiguous_keys(lambda a=a: read_latest(uri, as_of=a, default_account=account)))
    }
    if ambiguous:
        with pytest.raises(AmbiguousHistoryError) as caught:
            read_latest_many(uri, as_ofs=as_ofs, default_account=account)
        first = next(iter(ambiguous))
        assert caught.value.as_of == first
        assert {(a, c) for a, c, *_ in caught.value.ties} == ambiguous[first]
        return
    many = read_latest_many(uri, as_ofs=as_ofs, default_account=account)
    singles = [read_latest(uri, as_of=a, default_account=account) for a in as_ofs]
    assert len(many) == len(singles)
    for got, want in zip(many, singles, strict=True):
        assert got.equals(want)
        assert got.schema == COLUMNS


def wrong_answers(
    uri: str, got: list[pl.DataFrame], as_ofs: list[datetime], expected: Expected
) -> list[datetime]:
    """The times whose answer differs from a full read's."""
    return [a for g, a in zip(got, as_ofs, strict=True) if not g.equals(expected(uri, a))]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Refresh often or never after the first build; cut the tail near or far.
@given(
    steps=st.lists(step, min_size=1, max_size=8),
    legacy=st.booleans(),
    refresh_rows=st.sampled_from([1, 10**6]),
    tail_minutes=st.sampled_from([0, 600]),
)
def test_read_latest_many_equals_read_latest_at_each_time(
    steps, legacy, refresh_rows, tail_minutes
):
    account = LEGACY_ACCOUNT if legacy else None
    with (
        tempfile.TemporaryDirectory() as lake,
        mock.patch.object(latest, "REFRESH_ROWS", refresh_rows),
        mock.patch.object(latest, "TAIL_HORIZON", timedelta(minutes=tail_minutes)),
    ):
        uri = str(Path(lake) / "position_updates")
        write_deltalake(
            uri, history_frame([("DU1", 1, 1, 0, 0), ("DU2", 2, 1, 40, 0)], legacy=legacy)
        )
        for kind, arg in [*steps, ("many", [(61, 0), (-1, 0), (30, 0), (61, 0)])]:
            if kind == "append":  # a plain writer: duplicates and ties are kept
                write_deltalake(uri, history_frame(arg, legacy=legacy), mode="append")
            elif kind == "upsert" and not legacy:  # the project's writer rewrites files
                append_position_updates(uri, history_frame(arg, legacy=False))
            elif kind == "compact":  # the checkpoint no longer serves: rebuilt
                DeltaTable(uri).optimize.compact()
            elif kind == "read":  # builds or moves the checkpoint's cutoff (even if ambiguous)
                ambiguous_keys(
                    lambda arg=arg: read_latest(uri, as_of=time_of(arg), default_account=account)
                )
            elif kind == "many":
                assert_many_equals_singles(uri, [time_of(a) for a in arg], account)


@pytest.fixture
def history(updates_uri, append) -> None:
    """Two keys changing over an hour; a late row for key 1 arrives last."""
    append([("A", 1, 1, 0), ("A", 2, 5, 1), ("B", 1, 2, 2)])
    append([("A", 1, 2, 10), ("A", 2, 0, 20), ("B", 1, 3, 20)])
    append([("A", 1, 3, 30), ("A", 3, 7, 45), ("B", 1, 4, 60)])
    append([("A", 1, 9, 15)])  # late


def test_each_answer_is_the_latest_as_of_its_time(updates_uri, history, minute, expected):
    as_ofs = [minute(m) for m in (25, -5, 10, 60, 10, 14.5, 15, 1000)]  # unsorted, repeated

    got = read_latest_many(updates_uri, as_ofs=as_ofs)

    assert wrong_answers(updates_uri, got, as_ofs, expected) == []
    assert got[1].is_empty()
    assert got[1].schema == COLUMNS


@pytest.mark.parametrize(
    "times",
    [(5, 55), (12, 13), (51, 70)],
    ids=["straddling-the-cutoff", "before-the-cutoff", "after-the-cutoff"],
)
def test_answers_around_a_checkpoint(updates_uri, history, minute, expected, monkeypatch, times):
    monkeypatch.setattr(latest, "TAIL_HORIZON", timedelta(minutes=10))
    read_latest(updates_uri, as_of=minute(20))  # the checkpoint: cut 10 minutes before the end
    saved = checkpoint.load(checkpoint_uri(updates_uri))
    assert saved is not None
    assert saved.cutoff == minute(50) + STATS_PRECISION
    as_ofs = [minute(m) for m in times]

    got = read_latest_many(updates_uri, as_ofs=as_ofs)

    assert wrong_answers(updates_uri, got, as_ofs, expected) == []
    after = checkpoint.load(checkpoint_uri(updates_uri))
    assert after is not None
    assert (after.source, after.cutoff) == (saved.source, saved.cutoff)


def test_without_a_checkpoint_one_is_built_as_for_the_latest_time(
    updates_uri, history, minute, expected, monkeypatch
):
    monkeypatch.setattr(latest, "TAIL_HORIZON", timedelta(minutes=10))
    as_ofs = [minute(55), minute(5)]
    got = read_latest_many(updates_uri, as_ofs=as_ofs)
    saved = checkpoint.load(checkpoint_uri(updates_uri))
    assert saved is not None
    assert saved.cutoff == minute(55)
    assert wrong_answers(updates_uri, got, as_ofs, expected) == []


def test_a_backfill_opens_no_file_written_entirely_after_its_times(
    updates_uri, history, append, minute
):
    read_latest(updates_uri, as_of=minute(60))
    old = set(DeltaTable(updates_uri).file_uris())
    append([("A", 1, 4, 70), ("A", 4, 1, 75)])
    for path in set(DeltaTable(updates_uri).file_uris()) - old:  # were they read, this fails
        os.remove(path)

    got = read_latest_many(updates_uri, as_ofs=[minute(5), minute(65)])

    assert [g.height for g in got] == [3, 4]


def test_after_the_cutoff_the_checkpointed_files_are_not_opened(updates_uri, append, minute):
    append([("A", 1, 5, 0), ("A", 2, 1, 1)])
    read_latest(updates_uri, as_of=minute(10))
    covered = DeltaTable(updates_uri).file_uris()
    append([("A", 2, 4, 12), ("A", 3, 1, 14)])
    for path in covered:  # were they read, this read would fail
        os.remove(path)

    got = read_latest_many(updates_uri, as_ofs=[minute(13), minute(11), minute(20)])

    assert [g["position"].to_list() for g in got] == [[5.0, 4.0], [5.0, 1.0], [5.0, 4.0, 1.0]]


@pytest.mark.parametrize("checkpointed", [False, True])
def test_history_is_read_once_whatever_the_number_of_times(
    updates_uri, history, minute, monkeypatch, checkpointed
):
    if checkpointed:  # then the times are a backfill, before its cutoff
        read_latest(updates_uri, as_of=minute(60))
    real = PositionLog.scan
    read: list[int] = []

    def counting(self: PositionLog, files: pl.DataFrame, *, seq_start: int) -> pl.LazyFrame:
        read.append(files.height)
        return real(self, files, seq_start=seq_start)

    monkeypatch.setattr(PositionLog, "scan", counting)
    read_latest(updates_uri, as_of=minute(40))
    one = list(read)
    read.clear()
    if not checkpointed:  # start again from no checkpoint, like the single read
        shutil.rmtree(checkpoint_uri(updates_uri))

    read_latest_many(updates_uri, as_ofs=[minute(m / 2) for m in range(81)])

    assert read == one


def test_duplicate_times_give_independent_answers(updates_uri, history, minute):
    first, second = read_latest_many(updates_uri, as_ofs=[minute(20), minute(20)])
    first.insert_column(0, pl.Series("extra", [0] * first.height))
    assert second.columns == COLUMNS.names()


def test_times_in_another_zone_are_the_same_instants(updates_uri, history, minute, expected):
    cet = timezone(timedelta(hours=1))
    got = read_latest_many(updates_uri, as_ofs=[minute(20).astimezone(cet)])
    assert got[0].equals(expected(updates_uri, minute(20)))


def test_no_times_give_no_answers(updates_uri, history):
    assert read_latest_many(updates_uri, as_ofs=[]) == []
    assert list(iter_latest(updates_uri, as_ofs=[])) == []


def test_missing_table_is_the_same_error_even_without_times(tmp_path, minute):
    uri = str(tmp_path / "lake" / "position_updatez")
    for as_ofs in ([minute(0), minute(5)], []):
        with pytest.raises(TableNotFoundError, match="v6 lake init") as caught:
            read_latest_many(uri, as_ofs=as_ofs)
        assert uri in str(caught.value)


def test_a_naive_time_among_aware_ones_is_refused(updates_uri, history, minute):
    with pytest.raises(ValueError, match="as_of must be timezone-aware"):
        read_latest_many(updates_uri, as_ofs=[minute(0), datetime(2026, 1, 5, 14, 0)])  # noqa: DTZ001


def test_bad_rows_are_the_same_error(updates_uri, rows, minute):
    bad = rows([("A", 1, 5, 0), ("A", 2, 1, 1)]).with_columns(
        position=pl.when(pl.col("conid") == 2).then(None).otherwise(pl.col("position"))
    )
    write_deltalake(updates_uri, bad.to_arrow())
    with pytest.raises(BadRowsError, match="1 row"):
        read_latest_many(updates_uri, as_ofs=[minute(0), minute(10)])


def test_iter_latest_yields_each_distinct_time_in_order_and_fails_early(
    tmp_path, updates_uri, history, minute, expected
):
    as_ofs = [minute(30), minute(5), minute(30)]
    got = list(iter_latest(updates_uri, as_ofs=as_ofs))
    assert [a for a, _ in got] == [minute(5), minute(30)]
    assert all(frame.equals(expected(updates_uri, a)) for a, frame in got)
    with pytest.raises(TableNotFoundError):  # on the call, not on the first answer
        iter_latest(str(tmp_path / "nowhere"), as_ofs=as_ofs)


def test_lake_reads_a_legacy_table_with_its_default_account(tmp_path, rows, minute):
    lake = Lake(tmp_path, default_account=LEGACY_ACCOUNT)
    legacy = rows([("", 1, 5, 0), ("", 1, 2, 5), ("", 2, 3, 1)]).drop("account", "sec_type")
    write_deltalake(lake.uri("position_updates"), legacy.to_arrow(), partition_by=["symbol"])
    as_ofs = [minute(3), minute(0), minute(10)]

    got = lake.read_latest_many(as_ofs=as_ofs)

    assert all(g.equals(lake.read_latest(as_of=a)) for g, a in zip(got, as_ofs, strict=True))
    assert got[2]["account"].to_list() == [LEGACY_ACCOUNT] * 2
    assert [a for a, _ in lake.iter_latest(as_ofs=as_ofs)] == sorted(as_ofs)
