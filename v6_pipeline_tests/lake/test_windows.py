"""Per-window tables: a window's rows are replaced atomically, other windows never touched."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from deltalake import DeltaTable

from v6_pipeline.lake import Lake, schemas
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
    lake.write_discrepancies_of(discrepancies(first, [1, 2]), window_starts=[first])
    lake.write_discrepancies_of(discrepancies(second, [3]), window_starts=[second])
    lake.write_discrepancies_of(discrepancies(next_day, [4]), window_starts=[next_day])
    others_before = pl.read_delta(lake.uri("position_discrepancies")).filter(
        pl.col("window_start") != first
    )

    lake.write_discrepancies_of(discrepancies(first, [7, 8, 9]), window_starts=[first])
    lake.write_discrepancies_of(discrepancies(first, [7, 8, 9]), window_starts=[first])

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
    lake.write_discrepancies_of(discrepancies(minute(0), [1]), window_starts=[minute(0)])
    lake.write_discrepancies_of(discrepancies(minute(0), []), window_starts=[minute(0)])
    assert lake.read_discrepancies(window_start=minute(0)).is_empty()


def test_tables_are_partitioned_by_utc_date_not_window(tmp_path, minute):
    lake = Lake(tmp_path)
    for m in range(0, 30, 5):
        lake.write_discrepancies_of(discrepancies(minute(m), [m]), window_starts=[minute(m)])
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
    lake.write_discrepancies_of(discrepancies(minute(0), [1]), window_starts=[minute(0)])
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
        Lake(tmp_path).write_discrepancies_of(
            discrepancies(minute(0), [1]).drop("severity"), window_starts=[minute(0)]
        )


def test_naive_window_start_is_refused(tmp_path, minute):
    with pytest.raises(ValueError, match="timezone-aware"):
        Lake(tmp_path).read_discrepancies(window_start=minute(0).replace(tzinfo=None))


def judged(windows: list, conids: list[list[int]]) -> pl.DataFrame:
    """Discrepancy rows of several windows, told apart by `window_start`."""
    return pl.concat(
        discrepancies(w, c).with_columns(window_start=pl.lit(w, pl.Datetime("us", "UTC")))
        for w, c in zip(windows, conids, strict=True)
    )


def stored(lake: Lake) -> pl.DataFrame:
    return pl.read_delta(lake.uri("position_discrepancies")).sort("window_start", "conid")


def test_a_range_write_is_one_commit_equal_to_writing_window_by_window(tmp_path, minute):
    windows = [minute(0), minute(5), minute(10), minute(60 * 24)]  # over two UTC dates
    frame = judged(windows, [[1, 2], [], [3], [4, 5]])  # one window judged clean
    by_range, by_window = Lake(tmp_path / "range"), Lake(tmp_path / "window")

    by_range.write_discrepancies_of(frame, window_starts=windows)
    for w in windows:
        by_window.write_discrepancies_of(
            frame.filter(pl.col("window_start") == w), window_starts=[w]
        )

    assert stored(by_range).equals(stored(by_window))
    assert DeltaTable(by_range.uri("position_discrepancies")).version() == 0


def test_a_range_write_leaves_other_windows_untouched(tmp_path, minute):
    lake = Lake(tmp_path)
    windows = [minute(m) for m in range(0, 25, 5)]
    lake.write_discrepancies_of(judged(windows, [[m] for m in range(5)]), window_starts=windows)
    before = stored(lake)
    rewritten = [windows[1], windows[3]]  # not contiguous: windows[2] lies between

    lake.write_discrepancies_of(judged(rewritten, [[71, 72], [73]]), window_starts=rewritten)
    lake.write_discrepancies_of(judged(rewritten, [[71, 72], [73]]), window_starts=rewritten)

    after = stored(lake)
    is_rewritten = pl.col("window_start").is_in(rewritten)
    assert after.filter(~is_rewritten).equals(before.filter(~is_rewritten))
    assert after.filter(is_rewritten)["conid"].to_list() == [71, 72, 73]  # once: idempotent


def test_an_empty_frame_clears_the_range(tmp_path, minute):
    lake = Lake(tmp_path)
    windows = [minute(0), minute(5), minute(10)]
    lake.write_discrepancies_of(judged(windows, [[1], [2], [3]]), window_starts=windows)

    lake.write_discrepancies_of(judged(windows, [[], [], []]), window_starts=windows[:2])

    assert stored(lake)["conid"].to_list() == [3]


def test_range_rows_must_belong_to_the_range(tmp_path, minute):
    lake = Lake(tmp_path)
    frame = judged([minute(0), minute(5)], [[1], [2]])
    with pytest.raises(ValueError, match="1 row\\(s\\) belong to another window"):
        lake.write_discrepancies_of(frame, window_starts=[minute(0), minute(10)])
    with pytest.raises(ValueError, match="lacks a `window_start` column"):
        lake.write_discrepancies_of(
            frame.drop("window_start"), window_starts=[minute(0), minute(5)]
        )
    assert not DeltaTable.is_deltatable(lake.uri("position_discrepancies"))


def test_delta_latest_positions_round_trip_per_window(tmp_path, minute, rows):
    lake = Lake(tmp_path)
    windows = [minute(0), minute(5), minute(10)]
    latest = {
        windows[0]: rows([("A", 1, 5, 0), ("A", 2, 1, 0)]),
        windows[2]: rows([("A", 1, 6, 7)]),
    }  # windows[1]: an empty book
    frame = pl.concat(
        f.with_columns(
            window_start=pl.lit(w, pl.Datetime("us", "UTC")),
            as_of=pl.lit(w + timedelta(minutes=5, seconds=3), pl.Datetime("us", "UTC")),
        )
        for w, f in latest.items()
    )

    written = lake.write_delta_latest_of(frame, window_starts=windows)
    got = lake.read_delta_latest_of(window_starts=list(reversed(windows)))

    # What a write returns (the judgment step takes it instead of reading it back) is
    # what a read returns.
    assert list(written) == list(got)
    for w in windows:
        assert written[w].schema == got[w].schema
        assert written[w].sort("conid").equals(got[w].sort("conid")), w

    assert list(got) == windows
    assert got[windows[1]].is_empty()
    assert got[windows[1]].schema == schemas.polars_schema(schemas.DELTA_LATEST_POSITIONS)
    for w, f in latest.items():
        assert got[w].drop("window_start", "as_of").sort("conid").equals(f)
        assert got[w]["as_of"].to_list() == [w + timedelta(minutes=5, seconds=3)] * f.height
    table = DeltaTable(lake.uri("delta_latest_positions"))
    assert table.metadata().partition_columns == ["window_date"]
