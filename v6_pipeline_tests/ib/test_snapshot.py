"""The IB side of the pipeline: a complete snapshot, or a loud failure.

Every case goes over a real socket to the project's gateway emulator, through the
real ib_async client; nothing is mocked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from v6_pipeline.ib.errors import (
    ClientIdInUseError,
    ConnectivityLostError,
    GatewayDisconnectedError,
    GatewayUnreachableError,
    IBSnapshotError,
    MalformedPositionError,
    SnapshotTimeoutError,
)
from v6_pipeline.ib.gateway import GatewayThread, Portfolio
from v6_pipeline.ib.snapshot import POSITIONS_SCHEMA, IBSnapshot, take_snapshot
from v6_pipeline.reconcile import reconcile
from v6_pipeline_tests.support import DEMO

CLIENT_ID = 606
TIMEOUT_S = 2.0
# Start-up requests the snapshot must not make: orders, executions, account values.
UNWANTED_REQUESTS = {5: "reqOpenOrders", 99: "reqCompletedOrders", 7: "reqExecutions",
                     6: "reqAccountUpdates", 76: "reqAccountUpdatesMulti"}  # fmt: skip


@pytest.fixture
def gw(demo_gateway: GatewayThread) -> GatewayThread:
    return demo_gateway


def snapshot(gw: GatewayThread, **options: float) -> IBSnapshot:
    return take_snapshot(gw.host, gw.port, CLIENT_ID, **{"timeout_s": TIMEOUT_S, **options})


def delta_with_open_positions() -> pl.DataFrame:
    """What Delta believes: the demo's IB book, every position open."""
    return pl.DataFrame(
        {
            "account": [p.account for p in DEMO.positions],
            "conid": [p.conid for p in DEMO.positions],
            "symbol": [p.symbol for p in DEMO.positions],
            "sec_type": [p.sec_type for p in DEMO.positions],
            "position": [1.0] * len(DEMO.positions),
            "timestamp": [datetime.now(UTC) - timedelta(minutes=1)] * len(DEMO.positions),
        }
    )


class TestCompleteSnapshot:
    def test_equals_the_portfolio_field_by_field(self, gw: GatewayThread) -> None:
        snap = snapshot(gw)
        assert snap.positions.schema == POSITIONS_SCHEMA
        got = {(r["account"], r["conid"]): r for r in snap.positions.iter_rows(named=True)}
        assert set(got) == {p.key for p in DEMO.positions}
        for p in DEMO.positions:
            row = got[p.key]
            assert row["symbol"] == p.symbol
            assert row["sec_type"] == p.sec_type
            assert row["position"] == p.position
            assert row["avg_cost"] == p.avg_cost
            assert row["expiry"] == p.expiry
            assert row["right"] == p.right
            assert row["strike"] == p.strike
            assert row["currency"] == p.currency
        assert snap.accounts == ("DU111", "DU222")
        assert snap.taken_at.tzinfo is not None
        assert abs(snap.taken_at - datetime.now(UTC)) < timedelta(seconds=30)
        assert snap.attempts == 1

    def test_keeps_positions_closed_today(self, gw: GatewayThread) -> None:
        # The stored snapshot is the whole account: zero rows and other sec types stay,
        # so a later backfill with another scope can use it.
        snap = snapshot(gw)
        closed = snap.positions.filter(pl.col("position") == 0)
        assert closed["conid"].to_list() == [500005]
        assert "STK" in snap.positions["sec_type"].to_list()

    def test_empty_account_is_a_complete_empty_snapshot(self, gw: GatewayThread) -> None:
        gw.set_portfolio(Portfolio.of([], accounts=["DU111"]))
        snap = snapshot(gw)
        assert snap.positions.is_empty()
        assert snap.accounts == ("DU111",)
        # A true alarm: IB really holds nothing, so every open Delta position is naked.
        delta = delta_with_open_positions().filter(pl.col("sec_type") == "OPT")
        rows = reconcile(snap.positions, delta, as_of=snap.taken_at)
        assert set(rows["type"]) == {"NAKED_POSITION"}
        assert rows.height == delta.height

    def test_duplicates_keep_the_last_quantity(self, gw: GatewayThread) -> None:
        gw.set_faults(["duplicate-positions"])
        snap = snapshot(gw)
        assert snap.positions.height == len(DEMO.positions)
        got = {
            (r["account"], r["conid"]): r["position"] for r in snap.positions.iter_rows(named=True)
        }
        assert got == {p.key: p.position for p in DEMO.positions}

    def test_delay_within_the_timeout_succeeds(self, gw: GatewayThread) -> None:
        gw.set_faults(["delay:0.5"])
        assert snapshot(gw, timeout_s=5).positions.height == len(DEMO.positions)

    def test_asks_only_for_positions_and_hangs_up(self, gw: GatewayThread) -> None:
        before = len(gw.requests)
        snapshot(gw)
        sent = {r.msg_id for r in gw.requests[before:]}
        assert 61 in sent  # reqPositions
        assert not sent & UNWANTED_REQUESTS.keys(), [
            UNWANTED_REQUESTS[m] for m in sent & UNWANTED_REQUESTS.keys()
        ]
        deadline = time.monotonic() + 5
        while CLIENT_ID in gw.client_ids and time.monotonic() < deadline:
            time.sleep(0.02)
        assert CLIENT_ID not in gw.client_ids


# fault -> (exception, words its message must contain, attempts allowed)
FAULTS: dict[str, tuple[type[IBSnapshotError], tuple[str, ...]]] = {
    "no-position-end": (SnapshotTimeoutError, ("within 2 s", "positionEnd", "V6_IB_TIMEOUT_S")),
    "drop-mid-positions": (GatewayDisconnectedError, ("closed the connection", "position(s)")),
    "malformed-position": (MalformedPositionError, ("could not decode", "'61'")),
    "client-id-in-use": (ClientIdInUseError, ("606", "326", "V6_IB_CLIENT_ID")),
    "connectivity-lost": (ConnectivityLostError, ("1100", "connection to IB is down")),
    "delay:5": (SnapshotTimeoutError, ("within 2 s", "0 position(s) had arrived")),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_a_loud_failure_never_an_empty_book(gw: GatewayThread, fault: str) -> None:
    error_type, words = FAULTS[fault]
    gw.set_faults([fault])
    started = time.monotonic()
    with pytest.raises(error_type) as raised:
        snapshot(gw)
    elapsed = time.monotonic() - started
    for word in words:
        assert word in str(raised.value)
    # Bounded by the snapshot's time budget, retries included.
    assert elapsed < TIMEOUT_S + 1.0


def test_gateway_not_running() -> None:
    with GatewayThread(DEMO) as gw:
        host, port = gw.host, gw.port
    started = time.monotonic()
    with pytest.raises(GatewayUnreachableError) as raised:
        take_snapshot(host, port, CLIENT_ID, timeout_s=TIMEOUT_S)
    assert f"{host}:{port}" in str(raised.value)
    assert "V6_IB_PORT" in str(raised.value)
    assert time.monotonic() - started < TIMEOUT_S + 1.0


def test_transient_failures_are_retried(gw: GatewayThread) -> None:
    gw.set_faults(["drop-mid-positions"])
    before = len(gw.snapshots)
    with pytest.raises(GatewayDisconnectedError):
        snapshot(gw, max_attempts=3, backoff_s=0.05)
    assert len(gw.snapshots) - before == 3


def test_client_id_in_use_is_not_retried(gw: GatewayThread) -> None:
    gw.set_faults(["client-id-in-use"])
    started = time.monotonic()
    with pytest.raises(ClientIdInUseError):
        snapshot(gw, max_attempts=3, backoff_s=1.0)
    assert time.monotonic() - started < 1.0  # no backoff was slept


def test_a_real_client_id_clash(gw: GatewayThread) -> None:
    from ib_async import IB

    holder = IB()
    holder.connect(gw.host, gw.port, clientId=CLIENT_ID, readonly=True, timeout=5)
    try:
        with pytest.raises(ClientIdInUseError, match="606"):
            snapshot(gw)
    finally:
        holder.disconnect()
