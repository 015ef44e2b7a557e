"""The project's writer of `position_updates`: idempotent, last write wins."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from v6_pipeline.lake import BadRowsError, LakeSchemaError, read_latest, schemas
from v6_pipeline.lake.updates import append_position_updates, create_position_updates


def test_create_is_idempotent_and_empty(updates_uri):
    assert create_position_updates(updates_uri) is True
    assert create_position_updates(updates_uri) is False
    table = DeltaTable(updates_uri)
    assert table.metadata().partition_columns == ["symbol"]
    assert pl.read_delta(updates_uri).is_empty()


def test_replaying_a_batch_keeps_one_copy_and_the_last_write_wins(updates_uri, rows, minute):
    batch = rows([("A", 1, 5, 0), ("A", 2, 1, 0), ("B", 1, 2, 0)])
    append_position_updates(updates_uri, batch)
    append_position_updates(updates_uri, batch)
    append_position_updates(updates_uri, rows([("A", 1, 6, 0), ("A", 1, 7, 1)]))

    stored = pl.read_delta(updates_uri)

    assert stored.height == 4
    assert stored.filter(pl.col("conid") == 1, pl.col("account") == "A").sort("timestamp")[
        "position"
    ].to_list() == [6.0, 7.0]
    assert read_latest(updates_uri, as_of=minute(5))["position"].to_list() == [7.0, 1.0, 2.0]


def test_within_a_batch_the_row_given_last_wins(updates_uri, rows):
    append_position_updates(updates_uri, rows([("A", 1, 5, 0), ("A", 1, 6, 0)]))
    assert pl.read_delta(updates_uri)["position"].to_list() == [6.0]


def test_rows_without_an_account_are_refused(updates_uri, rows):
    batch = rows([("A", 1, 5, 0)]).with_columns(account=pl.lit(None, pl.String))
    with pytest.raises(BadRowsError, match="1 row"):
        append_position_updates(updates_uri, batch)


def test_written_schema_is_the_project_schema(updates_uri, rows):
    append_position_updates(updates_uri, rows([("A", 1, 5, 0)]).drop("avg_cost"))
    assert pl.read_delta(updates_uri).select(
        schemas.polars_schema(schemas.POSITION_UPDATES).names()
    ).schema == schemas.polars_schema(schemas.POSITION_UPDATES)


def test_replacing_a_row_finer_than_a_millisecond(updates_uri, rows, minute):
    # Delta's file statistics are milliseconds: the merge must still find this row.
    fine = pl.col("timestamp") + pl.duration(microseconds=777)
    append_position_updates(updates_uri, rows([("A", 1, 5, 0)]).with_columns(fine))
    append_position_updates(updates_uri, rows([("A", 1, 6, 0)]).with_columns(fine))
    assert pl.read_delta(updates_uri)["position"].to_list() == [6.0]


def test_identity_values_are_written_as_they_are_judged(updates_uri, rows):
    frame = rows([("du222 ", 1, -2, 0)]).with_columns(sec_type=pl.lit(" opt"), symbol=pl.lit("spy"))
    append_position_updates(updates_uri, frame)
    stored = pl.read_delta(updates_uri)
    assert stored.select("account", "sec_type", "symbol").rows() == [("DU222", "OPT", "SPY")]


def test_a_quantity_of_another_type_is_refused_and_nothing_written(updates_uri, rows):
    frame = rows([("A", 1, -2, 0)]).with_columns(position=pl.lit(True))
    with pytest.raises(LakeSchemaError, match="column `position` is bool, not a number"):
        append_position_updates(updates_uri, frame)
    assert not Path(updates_uri).exists()
