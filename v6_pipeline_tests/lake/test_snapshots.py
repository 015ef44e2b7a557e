"""Stored IB snapshots: an empty answer is not a missing one."""

from __future__ import annotations

import polars as pl
import pytest

from v6_pipeline.lake import Lake, TornSnapshotError, schemas
from v6_pipeline.lake.windows import write_window


def ib_rows(conids: list[int]) -> pl.DataFrame:
    n = len(conids)
    return pl.DataFrame(
        {
            "account": ["DU111"] * n,
            "conid": conids,
            "symbol": ["SPY"] * n,
            "sec_type": ["OPT"] * n,
            "position": [-3.0] * n,
        }
    )


def test_never_snapshotted_window_is_none(tmp_path, minute):
    assert Lake(tmp_path).read_snapshot(window_start=minute(0)) is None


def test_an_empty_snapshot_is_stored_and_told_apart(tmp_path, minute):
    lake = Lake(tmp_path)
    lake.write_snapshot(
        ib_rows([]),
        window_start=minute(0),
        taken_at=minute(5.1),
        accounts=["DU111", "DU222"],
        duration_s=0.4,
    )

    stored = lake.read_snapshot(window_start=minute(0))

    assert stored is not None
    assert stored.positions.is_empty()
    assert stored.positions.schema == schemas.polars_schema(schemas.IB_POSITION_SNAPSHOTS)
    assert (stored.taken_at, stored.accounts, stored.duration_s) == (
        minute(5.1),
        ("DU111", "DU222"),
        0.4,
    )
    assert lake.read_snapshot(window_start=minute(5)) is None


def test_a_snapshot_round_trips_and_a_rewrite_replaces_it(tmp_path, minute):
    lake = Lake(tmp_path)
    for conids, taken in (([1, 2], 5.1), ([3], 5.2)):
        lake.write_snapshot(
            ib_rows(conids),
            window_start=minute(0),
            taken_at=minute(taken),
            accounts=["DU111"],
            duration_s=1.0,
        )

    stored = lake.read_snapshot(window_start=minute(0))

    assert stored is not None
    assert stored.positions["conid"].to_list() == [3]
    assert stored.positions["taken_at"].to_list() == [minute(5.2)]
    assert stored.window_start == minute(0)


def test_rows_without_their_log_row_are_a_torn_snapshot(tmp_path, minute):
    lake = Lake(tmp_path)
    lake.write_snapshot(
        ib_rows([1, 2]),
        window_start=minute(0),
        taken_at=minute(5.1),
        accounts=["DU111"],
        duration_s=1.0,
    )
    # A rewrite that died after its rows and before its log row.
    write_window(
        lake.uri("ib_position_snapshots"),
        ib_rows([9]).with_columns(taken_at=pl.lit(minute(5.3))),
        window_start=minute(0),
        schema=schemas.IB_POSITION_SNAPSHOTS,
    )
    with pytest.raises(TornSnapshotError, match="re-materialize"):
        lake.read_snapshot(window_start=minute(0))


def test_many_windows_read_at_once_equal_one_by_one(tmp_path, minute):
    lake = Lake(tmp_path)
    # Windows on two UTC dates, one of them an empty answer, one never snapshotted.
    windows = [minute(0), minute(5), minute(60 * 24), minute(60 * 24 + 5)]
    for window, conids in zip(windows[:3], ([1, 2], [], [3]), strict=True):
        lake.write_snapshot(
            ib_rows(conids),
            window_start=window,
            taken_at=window + (minute(5.1) - minute(0)),
            accounts=["DU111"],
            duration_s=0.1,
        )

    together = lake.read_snapshots(window_starts=list(reversed(windows)))

    assert list(together) == windows  # every window asked for, in time order
    assert together[windows[3]] is None
    for window in windows[:3]:
        one = lake.read_snapshot(window_start=window)
        assert together[window].taken_at == one.taken_at
        assert together[window].positions.equals(one.positions)
    assert together[windows[1]].positions.is_empty()
