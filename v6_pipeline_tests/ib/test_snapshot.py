"""The IB side of the pipeline: a complete snapshot, or a loud failure.

Every case goes over a real socket to the project's gateway emulator, through the
real ib_async client; nothing is mocked.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.errors import (
    ClientIdInUseError,
    ConnectivityLostError,
    GatewayAddressError,
    GatewayDisconnectedError,
    GatewayUnreachableError,
    HandshakeTimeoutError,
    IBSnapshotError,
    MalformedContractError,
    MalformedPositionError,
    NonFinitePositionError,
    SnapshotTimeoutError,
)
from v6_pipeline.ib.gateway import GatewayThread, Portfolio
from v6_pipeline.ib.protocol import Incoming, Outgoing
from v6_pipeline.ib.snapshot import POSITIONS_SCHEMA, IBSnapshot, checked_positions, take_snapshot
from v6_pipeline.reconcile import reconcile
from v6_pipeline_tests.support import DEMO

CLIENT_ID = 606
TIMEOUT_S = 2.0
# Start-up requests the snapshot must not make: orders, executions, account values.
UNWANTED_REQUESTS = {
    Incoming.REQ_OPEN_ORDERS,
    Incoming.REQ_COMPLETED_ORDERS,
    Incoming.REQ_EXECUTIONS,
    Incoming.REQ_ACCOUNT_UPDATES,
    Incoming.REQ_ACCOUNT_UPDATES_MULTI,
}


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
        assert Incoming.REQ_POSITIONS in sent
        assert not sent & UNWANTED_REQUESTS, [Incoming(m).name for m in sent & UNWANTED_REQUESTS]
        deadline = time.monotonic() + 5
        while CLIENT_ID in gw.client_ids and time.monotonic() < deadline:
            time.sleep(0.02)
        assert CLIENT_ID not in gw.client_ids


FIRST = DEMO.positions[0]
# fault -> (exception, words its message must contain)
FAULTS: dict[str, tuple[type[IBSnapshotError], tuple[str, ...]]] = {
    "no-position-end": (SnapshotTimeoutError, ("within 2 s", "positionEnd", "V6_IB_TIMEOUT_S")),
    "drop-mid-positions": (
        GatewayDisconnectedError,
        ("closed the connection during the positions download", "position(s)"),
    ),
    "malformed-position": (
        MalformedPositionError,
        ("could not decode", f"'{Outgoing.POSITION_DATA}'"),
    ),
    "client-id-in-use": (
        ClientIdInUseError,
        ("606", f"error {ErrorCode.CLIENT_ID_IN_USE}", "V6_IB_CLIENT_ID"),
    ),
    "connectivity-lost": (
        ConnectivityLostError,
        (f"error {ErrorCode.CONNECTIVITY_LOST}", "interrupted the positions answer"),
    ),
    "delay:5": (SnapshotTimeoutError, ("within 2 s", "0 position(s) had arrived")),
    "nonfinite-position": (
        NonFinitePositionError,
        ("2 position(s)", "not a finite number", f"account {FIRST.account}, conid {FIRST.conid}"),
    ),
    # issue #20: a conid beyond int64 was a bare "TypeError: unexpected value while
    # building Series of type Int64"
    "huge-conid": (
        MalformedContractError,
        (
            "1 position(s) whose conid cannot be used",
            f"account {FIRST.account}, SPY 20270115 600 C (OPT): conid {2**64}",
            "beyond the 64-bit range",
            "the gateway's log and version",
        ),
    ),
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


def test_a_huge_conid_is_not_retried_and_never_a_verdict(gw: GatewayThread) -> None:
    gw.set_faults(["huge-conid"])
    started = time.monotonic()
    with pytest.raises(MalformedContractError) as raised:
        snapshot(gw, timeout_s=10)
    assert time.monotonic() - started < 5.0  # the same contract comes back on every ask
    assert not raised.value.transient
    assert (raised.value.account, raised.value.field) == (FIRST.account, "conid")
    assert not isinstance(raised.value.__context__, TypeError)  # a sentence, not a traceback


def test_client_id_in_use_names_the_setting_that_chose_the_id(gw: GatewayThread) -> None:
    gw.set_faults(["client-id-in-use"])
    with pytest.raises(ClientIdInUseError) as raised:
        take_snapshot(
            gw.host, gw.port, 607, timeout_s=TIMEOUT_S, client_id_setting="V6_STREAM_CLIENT_ID"
        )
    assert "Set V6_STREAM_CLIENT_ID to an id" in str(raised.value)
    assert "V6_IB_CLIENT_ID" not in str(raised.value)


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


def test_an_avg_cost_that_is_not_a_number_is_stored_as_unknown(gw: GatewayThread) -> None:
    # avg_cost is informational (nothing is judged by it): the snapshot stands.
    gw.set_faults(["nonfinite-avg-cost"])
    snap = snapshot(gw)
    got = {(r["account"], r["conid"]): r["avg_cost"] for r in snap.positions.iter_rows(named=True)}
    assert got == {p.key: None if p is FIRST else p.avg_cost for p in DEMO.positions}


class TestCheckedPositions:
    """The pure rule behind the two tests above, case by case."""

    @staticmethod
    def frame(positions: list[float], avg_costs: list[float | None]) -> pl.DataFrame:
        n = len(positions)
        return pl.DataFrame(
            {
                "account": ["DU1"] * n,
                "conid": list(range(1, n + 1)),
                "symbol": ["X"] * n,
                "sec_type": ["OPT"] * n,
                "right": ["C"] * n,
                "strike": [1.0] * n,
                "expiry": ["20270115"] * n,
                "multiplier": ["100"] * n,
                "currency": ["USD"] * n,
                "position": positions,
                "avg_cost": avg_costs,
            },
            schema=POSITIONS_SCHEMA,
        )

    def test_finite_quantities_pass_unchanged(self) -> None:
        frame = self.frame([0.0, -3.0, 12.5, 1e300], [0.0, 1.5, None, -2.0])
        assert checked_positions(frame).equals(frame)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_a_quantity_that_is_not_finite_refuses_the_snapshot(self, bad: float) -> None:
        with pytest.raises(NonFinitePositionError) as raised:
            checked_positions(self.frame([1.0, bad, 2.0, bad], [1.0] * 4))
        assert "2 position(s)" in str(raised.value)
        assert f"account DU1, conid 2: {bad}" in str(raised.value)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_an_avg_cost_that_is_not_finite_becomes_unknown(self, bad: float) -> None:
        checked = checked_positions(self.frame([1.0, 2.0, 3.0], [bad, 4.0, None]))
        assert checked["avg_cost"].to_list() == [None, 4.0, None]
        assert checked["position"].to_list() == [1.0, 2.0, 3.0]


class SilentServer:
    """Accepts TCP connections and never says a word: what a port where the API is off
    behind a proxy, another service's port, or TWS waiting for its 'accept incoming
    connection?' click looks like to a client."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self.accepted.append(self._listener.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_gateway_that_never_answers_the_handshake_is_named_and_retried(
    silent: SilentServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(HandshakeTimeoutError) as raised:
        take_snapshot("127.0.0.1", silent.port, CLIENT_ID, timeout_s=TIMEOUT_S, backoff_s=0.1)
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert f"Connected to 127.0.0.1:{silent.port}, but no API handshake answer within" in message
    assert "V6_IB_PORT the API port" in message
    assert raised.value.transient
    # each attempt had a share of the budget, so there was time to try again
    deadline = time.monotonic() + 2
    while len(silent.accepted) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(silent.accepted) >= 2
    assert elapsed < TIMEOUT_S + 1.0


@pytest.mark.parametrize(
    ("host", "port", "words"),
    [
        ("127.0.0.1", 99999, ("V6_IB_PORT=99999 is not a TCP port (1..65535)",)),
        ("127.0.0.1", 0, ("V6_IB_PORT=0 is not a TCP port",)),
        ("127.0.0.1", -4002, ("V6_IB_PORT=-4002 is not a TCP port",)),
        ("no-such-host.invalid", 4002, ("V6_IB_HOST='no-such-host.invalid' does not resolve",)),
        ("", 4002, ("V6_IB_HOST is empty",)),
    ],
    ids=["port-too-high", "port-zero", "port-negative", "unresolvable-host", "empty-host"],
)
def test_a_bad_address_names_the_setting_and_is_not_retried(
    host: str, port: int, words: tuple[str, ...]
) -> None:
    started = time.monotonic()
    with pytest.raises(GatewayAddressError) as raised:
        take_snapshot(host, port, CLIENT_ID, timeout_s=10, backoff_s=2.0)
    for word in words:
        assert word in str(raised.value)
    assert not raised.value.transient
    assert time.monotonic() - started < 2.0  # no backoff was slept
