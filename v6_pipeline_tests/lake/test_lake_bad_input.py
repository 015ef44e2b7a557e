"""Bad `position_updates` input: each a clear error naming the path, column and count."""

from __future__ import annotations

import polars as pl
import pytest
from deltalake import write_deltalake

from v6_pipeline.lake import BadRowsError, LakeSchemaError, TableNotFoundError, read_latest


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

    with pytest.raises(BadRowsError, match=f"3 row\\(s\\) with a null `{column}`") as caught:
        read_latest(updates_uri, as_of=minute(10))
    assert updates_uri in str(caught.value)
    assert (caught.value.column, caught.value.count) == (column, 3)


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
