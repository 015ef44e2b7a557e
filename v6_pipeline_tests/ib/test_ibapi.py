"""IB's own client (ibapi from the package registry, threaded reader) reads the same
snapshot: proof that the emulator speaks the protocol, not ib_async's dialect."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.wrapper import EWrapper

from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import GatewayThread, Portfolio
from v6_pipeline_tests.ib.support import SAMPLE, Row, client_row, rows

WAIT_S = 5.0


class Recorder(EWrapper, EClient):  # type: ignore[misc]
    """The usual ibapi application: a wrapper that is its own client."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.accounts = ""
        self.positions: list[Row] = []
        self.errors: list[tuple[int, int]] = []
        self.ready = threading.Event()
        self.snapshot_done = threading.Event()
        self.position_seen = threading.Event()
        self.got_error = threading.Event()

    def nextValidId(self, order_id: int) -> None:
        self.ready.set()

    def managedAccounts(self, accounts: str) -> None:
        self.accounts = accounts

    def position(self, account: str, contract: Contract, position: float, avg_cost: float) -> None:
        self.positions.append(client_row(account, contract, position, avg_cost))
        self.position_seen.set()

    def positionEnd(self) -> None:
        self.snapshot_done.set()

    def error(self, req_id: int, code: int, message: str) -> None:
        self.errors.append((req_id, code))
        self.got_error.set()


@pytest.fixture
def gateway() -> Iterator[GatewayThread]:
    with GatewayThread(SAMPLE) as gw:
        yield gw


@pytest.fixture
def app(gateway: GatewayThread) -> Iterator[Recorder]:
    app = Recorder()
    app.connect(gateway.host, gateway.port, clientId=11)
    reader = threading.Thread(target=app.run, daemon=True)
    reader.start()
    assert app.ready.wait(WAIT_S)
    yield app
    app.disconnect()
    reader.join(WAIT_S)


def test_ibapi_negotiates_157_and_reads_the_snapshot(gateway: GatewayThread, app: Recorder) -> None:
    app.reqPositions()

    assert app.snapshot_done.wait(WAIT_S)
    assert app.serverVersion() == 157
    assert app.accounts == "DU111,DU222"
    assert sorted(app.positions) == rows(SAMPLE)
    assert gateway.client_ids == {11}


def test_ibapi_receives_errors_in_the_157_layout(app: Recorder) -> None:
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange, contract.currency = (
        "SPY",
        "STK",
        "SMART",
        "USD",
    )

    app.reqMktData(1001, contract, "", False, False, [])

    assert app.got_error.wait(WAIT_S)  # an error with advancedJson would be dropped
    assert app.errors == [(1001, ErrorCode.SERVER_ERROR_PROCESSING)]


def test_ibapi_receives_live_updates(gateway: GatewayThread, app: Recorder) -> None:
    app.reqPositions()
    assert app.snapshot_done.wait(WAIT_S)
    app.positions.clear()
    app.position_seen.clear()
    moved = dataclasses.replace(SAMPLE.positions[3], position=8)

    gateway.set_portfolio(Portfolio.of([*SAMPLE.positions[:3], moved, *SAMPLE.positions[4:]]))

    assert app.position_seen.wait(WAIT_S)
    assert [r[-2] for r in app.positions] == [8.0]
