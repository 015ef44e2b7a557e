"""Per-window tables: a window's rows are replaced atomically, other windows never touched."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from deltalake import DeltaTable

from v6_pipeline.lake import schemas
from v6_pipeline.lake.lake import Lake
from v6_pipeline.lake.windows import read_window, write_window


def discrepancies(as_of, conids: list[int]) -> pl.DataFrame:
    n = len(conids)
    return pl.DataFrame(
        {
            "as_of": [as_of] * n,
            "account": ["A"] * n,
            "conid": conids,
            "type": ["NAKED_POSITION"] * n,
            "severity": ["critical"] * n,
            "ib_position": [0.0] * n,
            "details": ["Delta holds it, IB does not"] * n,
        }
    )


def test_rewriting_a_window_twice_leaves_one_copy_and_others_untouched(tmp_path, minute):
    lake = Lake(tmp_path)
    first, second, next_day = minute(0), minute(5), minute(0) + timedelta(days=1)
    lake.write_discrepancies(discrepancies(first, [1, 2]), window_start=first)
    lake.write_discrepancies(discrepancies(second, [3]), window_start=second)
    lake.write_discrepancies(discrepancies(next_day, [4]), window_start=next_day)
    others_before = pl.read_delta(lake.uri("position_discrepancies")).filter(
        pl.col("window_start") != first
    )

    lake.write_discrepancies(discrepancies(first, [7, 8, 9]), window_start=first)
    lake.write_discrepancies(discrepancies(first, [7, 8, 9]), window_start=first)

    everything = pl.read_delta(lake.uri("position_discrepancies"))
    assert sorted(lake.read_discrepancies(window_start=first)["conid"]) == [7, 8, 9]
    assert everything.filter(pl.col("window_start") == first).height == 3
    assert (
        everything.filter(pl.col("window_start") != first)
        .sort("conid")
        .equals(others_before.sort("conid"))
    )


def test_an_empty_frame_clears_the_window(tmp_path, minute):
    lake = Lake(tmp_path)
    lake.write_discrepancies(discrepancies(minute(0), [1]), window_start=minute(0))
    lake.write_discrepancies(discrepancies(minute(0), []), window_start=minute(0))
    assert lake.read_discrepancies(window_start=minute(0)).is_empty()


def test_tables_are_partitioned_by_utc_date_not_window(tmp_path, minute):
    lake = Lake(tmp_path)
    for m in range(0, 30, 5):
        lake.write_discrepancies(discrepancies(minute(m), [m]), window_start=minute(m))
    table = DeltaTable(lake.uri("position_discrepancies"))
    assert table.metadata().partition_columns == ["window_date"]
    assert set(pl.DataFrame(table.get_add_actions(flatten=True))["partition.window_date"]) == {
        minute(0).date()
    }


def test_reading_a_window_of_a_missing_table_is_empty_with_the_schema(tmp_path, minute):
    got = read_window(
        str(tmp_path / "nothing"), window_start=minute(0), schema=schemas.POSITION_DISCREPANCIES
    )
    assert got.is_empty()
    assert got.schema == schemas.polars_schema(schemas.POSITION_DISCREPANCIES)


def test_read_window_returns_the_schema_columns(tmp_path, minute):
    lake = Lake(tmp_path)
    lake.write_discrepancies(discrepancies(minute(0), [1]), window_start=minute(0))
    got = lake.read_discrepancies(window_start=minute(0))
    assert got.schema == schemas.polars_schema(schemas.POSITION_DISCREPANCIES)
    assert got["window_start"].to_list() == [minute(0)]


def test_rows_of_another_window_are_refused(tmp_path, minute):
    frame = discrepancies(minute(0), [1]).with_columns(window_start=pl.lit(minute(5)))
    with pytest.raises(ValueError, match="another window"):
        write_window(
            str(tmp_path / "t"),
            frame,
            window_start=minute(0),
            schema=schemas.POSITION_DISCREPANCIES,
        )


def test_a_missing_column_is_named(tmp_path, minute):
    with pytest.raises(ValueError, match="severity"):
        Lake(tmp_path).write_discrepancies(
            discrepancies(minute(0), [1]).drop("severity"), window_start=minute(0)
        )


def test_naive_window_start_is_refused(tmp_path, minute):
    with pytest.raises(ValueError, match="timezone-aware"):
        Lake(tmp_path).read_discrepancies(window_start=minute(0).replace(tzinfo=None))
