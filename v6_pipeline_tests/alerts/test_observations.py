"""Observations from the project's real rows: a discrepancy row of `reconcile()` is a leg."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from v6_pipeline.alerts.observations import IB_SIDE_CAUSES, Leg, RunFailed
from v6_pipeline.reconcile import reconcile
from v6_pipeline_tests.alerts.support import T0


def test_a_reconcile_row_becomes_a_leg() -> None:
    ib = pl.DataFrame(
        {
            "account": ["DU111"],
            "conid": [2],
            "symbol": ["QQQ"],
            "sec_type": ["OPT"],
            "position": [4.0],
        }
    )
    delta = pl.DataFrame(
        {
            "account": ["DU111", "DU111"],
            "conid": [1, 2],
            "symbol": ["SPY", "QQQ"],
            "sec_type": ["OPT", "OPT"],
            "position": [-3.0, 1.0],
            "timestamp": [T0 - timedelta(hours=1)] * 2,
        }
    )
    rows = reconcile(ib, delta, as_of=T0).sort("conid")
    naked, mismatch = (Leg.from_row(r) for r in rows.iter_rows(named=True))
    assert (naked.account, naked.conid, naked.symbol, naked.naked) == ("DU111", 1, "SPY", True)
    assert (naked.ib_position, naked.delta_position) == (0.0, -3.0)
    assert naked.details
    assert (mismatch.type, mismatch.ib_position, mismatch.delta_position) == (
        "POSITION_MISMATCH",
        4.0,
        1.0,
    )
    assert not mismatch.naked
    assert Leg.from_dict(naked.to_dict()) == naked


def test_a_row_with_contract_columns_and_a_missing_delta_side() -> None:
    row = {
        "account": "DU1",
        "conid": 7,
        "type": "MISSING_FROM_DELTA",
        "ib_position": 2,
        "delta_position": None,
        "symbol": "SPY",
        "expiry": "20270115",
        "strike": 600,
        "right": "P",
        "details": "d",
    }
    leg = Leg.from_row(row)
    assert (leg.delta_position, leg.expiry, leg.strike, leg.right, leg.sec_type) == (
        None,
        "20270115",
        600.0,
        "P",
        "",
    )


def test_ib_side_causes_are_the_snapshot_errors_and_nothing_of_the_lake() -> None:
    assert {
        "GatewayUnreachableError",
        "ClientIdInUseError",
        "SnapshotTimeoutError",
    } <= IB_SIDE_CAUSES
    assert {"ConnectivityLostError", "GatewayDisconnectedError"} <= IB_SIDE_CAUSES
    assert not {"LakeError", "TableNotFoundError", "Failure"} & IB_SIDE_CAUSES
    failure = RunFailed("r", T0, "GatewayUnreachableError", "s")
    assert failure.ib_side
    assert RunFailed.from_dict(failure.to_dict()) == failure
