"""Bad `position_updates` input: each a clear error naming the path, column and count."""

from __future__ import annotations

import math
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from v6_pipeline.lake import (
    BadRowsError,
    Lake,
    LakeSchemaError,
    TableNotFoundError,
    iter_latest,
    read_latest,
)
from v6_pipeline.lake.updates import append_position_updates


def test_missing_table_names_the_path_and_how_to_create_it(tmp_path, minute):
    uri = str(tmp_path / "lake" / "position_updatez")
    with pytest.raises(TableNotFoundError) as caught:
        read_latest(uri, as_of=minute(0))
    assert uri in str(caught.value)
    assert "v6 lake init" in str(caught.value)


@pytest.mark.parametrize("column", ["conid", "symbol", "position", "timestamp"])
def test_missing_required_column_is_named(updates_uri, rows, minute, column):
    write_deltalake(updates_uri, rows([("A", 1, 5, 0)]).drop(column).to_arrow())
    with pytest.raises(LakeSchemaError, match=f"`{column}` is missing") as caught:
        read_latest(updates_uri, as_of=minute(0))
    assert updates_uri in str(caught.value)


def test_legacy_table_without_a_default_account_is_refused(updates_uri, rows, minute):
    write_deltalake(updates_uri, rows([("A", 1, 5, 0)]).drop("account").to_arrow())
    with pytest.raises(LakeSchemaError, match=r"`account` is missing.*V6_DEFAULT_ACCOUNT"):
        read_latest(updates_uri, as_of=minute(0))


def _with_nulls(frame: pl.DataFrame, column: str, count: int) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) < count).then(None).otherwise(pl.col(column)).alias(column)
    )


@pytest.mark.parametrize("stats", [True, False], ids=["from-log-stats", "from-rows"])
@pytest.mark.parametrize("column", ["account", "conid", "position", "timestamp"])
def test_nulls_in_key_columns_are_counted(updates_uri, rows, minute, column, stats):
    frame = _with_nulls(rows([("A", c, 1, c) for c in range(5)]), column, count=3)
    # Without column statistics in the log, the rows themselves are counted when read.
    config = None if stats else {"delta.dataSkippingNumIndexedCols": "0"}
    write_deltalake(updates_uri, frame.to_arrow(), configuration=config)

    with pytest.raises(
        BadRowsError, match=f"3 row\\(s\\) with a null `{column}` \\(e.g. "
    ) as caught:
        read_latest(updates_uri, as_of=minute(10))
    assert updates_uri in str(caught.value)
    assert (caught.value.column, caught.value.count) == (column, 3)
    # The example is one of the bad rows, by its key (which may hold the null itself).
    assert caught.value.example == {
        "account": None if column == "account" else "A",
        "conid": None if column == "conid" else 0,
        "timestamp": None if column == "timestamp" else minute(0),
    }


def test_nulls_arriving_after_the_checkpoint_are_counted(updates_uri, rows, minute):
    write_deltalake(updates_uri, rows([("A", 1, 5, 0)]).to_arrow())  # no NOT NULL constraints
    read_latest(updates_uri, as_of=minute(10))
    write_deltalake(
        updates_uri,
        _with_nulls(rows([("A", 2, 1, 1)] * 2), "position", 2).to_arrow(),
        mode="append",
    )
    with pytest.raises(BadRowsError, match="2 row"):
        read_latest(updates_uri, as_of=minute(10))


def test_naive_timestamp_column_is_refused(updates_uri, rows, minute):
    naive = rows([("A", 1, 5, 0)]).with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    write_deltalake(updates_uri, naive.to_arrow())
    with pytest.raises(LakeSchemaError, match="`timestamp` is timestamp\\[us\\], not a UTC"):
        read_latest(updates_uri, as_of=minute(0))


def test_tables_with_deletion_vectors_are_refused(updates_uri, rows, minute):
    write_deltalake(
        updates_uri,
        rows([("A", 1, 5, 0)]).to_arrow(),
        configuration={"delta.enableDeletionVectors": "true"},
    )
    with pytest.raises(LakeSchemaError, match="deletion vectors"):
        read_latest(updates_uri, as_of=minute(0))


def test_requiring_a_missing_table_names_it_and_creates_nothing(tmp_path):
    lake_dir = tmp_path / "mistyped" / "lake"
    lake = Lake(lake_dir)
    with pytest.raises(TableNotFoundError, match="v6 lake init") as caught:
        lake.require_position_updates()
    assert lake.uri("position_updates") in str(caught.value)
    assert not (tmp_path / "mistyped").exists()
    lake.create_position_updates()
    lake.require_position_updates()


NON_FINITE = pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])


@NON_FINITE
@pytest.mark.parametrize("read", ["first", "steady", "backfill", "many"])
def test_non_finite_positions_are_bad_rows(updates_uri, append, minute, value, read):
    good = [("A", 1, 5, 0), ("A", 2, 1, 1), ("A", 2, 2, 20)]
    bad = [("B", 7, value, 3), ("B", 7, value, 4)]  # late rows, in one file
    if read == "first":
        append(good + bad)
    else:
        append(good)
        read_latest(updates_uri, as_of=minute(30))  # the checkpoint, cut near minute 20
        append(bad)
    as_of = minute(5) if read == "backfill" else minute(30)

    def reading() -> object:
        if read == "many":  # raised on the call, before any answer is asked for
            return iter_latest(updates_uri, as_ofs=[minute(25), as_of])
        return read_latest(updates_uri, as_of=as_of)

    with pytest.raises(BadRowsError) as caught:
        reading()

    error = caught.value
    assert (error.table_uri, error.column, error.count) == (updates_uri, "position", 2)
    assert error.example == {"account": "B", "conid": 7, "timestamp": minute(3)}
    assert str(error) == (
        f"{updates_uri}: 2 row(s) with a non-finite `position` (e.g. account B, conid 7, "
        f"timestamp {minute(3).isoformat()}); repair these rows in the table (nothing is "
        "dropped silently)"
    )


@NON_FINITE
def test_the_writer_refuses_non_finite_positions_and_writes_nothing(
    updates_uri, rows, minute, value
):
    append_position_updates(updates_uri, rows([("A", 1, 5, 0)]))
    version = DeltaTable(updates_uri).version()
    batch = rows([("A", 2, 1, 1), ("B", 3, value, 2)])

    with pytest.raises(BadRowsError) as caught:
        append_position_updates(updates_uri, batch)

    assert str(caught.value) == (
        f"rows for {updates_uri}: 1 row(s) with a non-finite `position` (e.g. account B, "
        f"conid 3, timestamp {minute(2).isoformat()}); fix them before writing (nothing was "
        "written)"
    )
    assert DeltaTable(updates_uri).version() == version


@pytest.mark.parametrize(
    ("column", "values", "stored"),
    [
        ("position", [True, False], "bool"),
        ("position", ["-2", "0"], "string"),
        ("position", [Decimal("-2.0"), Decimal("0.0")], "decimal128"),
        ("conid", [1.0, 2.0], "double"),
        ("account", [1, 2], "int64"),
        ("sec_type", [True, True], "bool"),
    ],
)
def test_a_column_stored_with_another_type_is_refused_never_cast(
    updates_uri, rows, minute, column, values, stored
):
    frame = rows([("A", 1, -2, 0), ("A", 2, 0, 1)]).to_arrow()
    i = frame.schema.get_field_index(column)
    write_deltalake(updates_uri, frame.set_column(i, column, pa.array(values)))

    with pytest.raises(LakeSchemaError) as caught:
        read_latest(updates_uri, as_of=minute(5))

    message = str(caught.value)
    assert f"column `{column}` is {stored}" in message
    assert "cannot be read exactly" in message
    assert "rewrite the column as" in message


def test_integer_quantities_are_read_exactly(updates_uri, rows, minute):
    frame = rows([("A", 1, -2, 0), ("A", 2, 3, 1)]).to_arrow()
    i = frame.schema.get_field_index("position")
    write_deltalake(updates_uri, frame.set_column(i, "position", pa.array([-2, 3], pa.int32())))

    got = read_latest(updates_uri, as_of=minute(5))

    assert got["position"].to_list() == [-2.0, 3.0]


def test_identity_values_are_trimmed_and_upper_cased_as_read(updates_uri, rows, minute):
    frame = rows([("du222 ", 1, -2, 0), ("DU222", 1, -3, 1), (" DU222", 2, 4, 0)])
    frame = frame.with_columns(
        sec_type=pl.Series(["opt", " OPT ", "  "]), symbol=pl.Series([" spy", "SPY", "qqq "])
    )
    write_deltalake(updates_uri, frame.to_arrow())

    got = read_latest(updates_uri, as_of=minute(5))

    # "du222 " and "DU222" are one account: its latest row wins, by time.
    assert got.select("account", "conid", "position", "sec_type", "symbol").rows() == [
        ("DU222", 1, -3.0, "OPT", "SPY"),
        ("DU222", 2, 4.0, None, "QQQ"),  # a blank sec type is unknown (in scope)
    ]


def test_a_blank_account_is_a_bad_row(updates_uri, rows, minute):
    write_deltalake(updates_uri, rows([("A", 1, -2, 0), ("  ", 2, -1, 1)]).to_arrow())

    with pytest.raises(BadRowsError, match=r"1 row\(s\) with a blank `account`"):
        read_latest(updates_uri, as_of=minute(5))
