"""The steady read reads the commits after its checkpoint, not the whole Delta log; when
those did more than add files, it opens the table as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
from deltalake import write_deltalake

from v6_pipeline.lake import read_latest, schemas
from v6_pipeline.lake.paths import checkpoint_uri


def log_files(uri: str) -> list[Path]:
    return sorted(Path(uri, "_delta_log").iterdir())


def test_the_steady_read_does_not_replay_the_log(updates_uri, append, minute, expected):
    append([("A", 1, 5, 0), ("A", 2, 1, 1)])
    append([("A", 1, 6, 2)])
    read_latest(updates_uri, as_of=minute(10))  # the checkpoint, at the newest version
    append([("A", 2, 4, 12)])
    append([("A", 3, 1, 3)])  # late
    want = expected(updates_uri, minute(15))
    # Without its first commit the table cannot be opened: were the log replayed, the read
    # would fail.
    log_files(updates_uri)[0].unlink()

    assert read_latest(updates_uri, as_of=minute(15)).equals(want)


def test_a_table_recreated_at_the_same_path_is_read_anew(updates_uri, append, minute, expected):
    append([("A", 1, 5, 0)])
    append([("A", 2, 1, 1)])
    read_latest(updates_uri, as_of=minute(10))
    shutil.rmtree(updates_uri)  # another table, with as many commits and then one more
    append([("B", 7, 3, 0)])
    append([("B", 8, 2, 1)])
    append([("B", 9, 1, 2)])

    got = read_latest(updates_uri, as_of=minute(10))

    assert got.equals(expected(updates_uri, minute(10)))
    assert got["account"].to_list() == ["B"] * 3


def test_a_schema_change_opens_the_table(updates_uri, append, rows, minute, expected):
    append([("A", 1, 5, 0)])
    read_latest(updates_uri, as_of=minute(10))
    wider = rows([("A", 1, 6, 1)]).with_columns(venue=pl.lit("SMART"))
    write_deltalake(updates_uri, wider.to_arrow(), mode="append", schema_mode="merge")

    got = read_latest(updates_uri, as_of=minute(10))

    assert got.equals(expected(updates_uri, minute(10)))
    assert got.schema == schemas.polars_schema(schemas.POSITION_UPDATES)


def test_commits_that_add_nothing_are_read_past(updates_uri, append, minute, expected):
    append([("A", 1, 5, 0)])
    read_latest(updates_uri, as_of=minute(10))
    empty = pl.DataFrame(schema=schemas.polars_schema(schemas.POSITION_UPDATES))
    write_deltalake(updates_uri, empty.to_arrow(), mode="append")
    append([("A", 1, 6, 1)])

    assert read_latest(updates_uri, as_of=minute(10)).equals(expected(updates_uri, minute(10)))
    assert Path(checkpoint_uri(updates_uri)).exists()
