"""The real ib_async client over a real socket: what it sees of the gateway."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from ib_async import IB, LimitOrder, Stock

from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import Gateway, Portfolio, PortfolioPosition
from v6_pipeline.ib.protocol import Incoming
from v6_pipeline_tests.ib.support import SAMPLE, Connect, ib_rows, rows, until

pytestmark = pytest.mark.anyio


async def test_connects_readonly_without_a_timeout_or_warning(
    gateway: Gateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ib_async")
    ib = await connect(readonly=True, timeout=2.0)

    assert ib.isConnected()
    assert ib.client.serverVersion() == 178
    assert sorted(ib.managedAccounts()) == ["DU111", "DU222"]
    complaints = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("ib_async") and r.levelno >= logging.WARNING
    ]
    assert complaints == []
    assert any("Synchronization complete" in r.getMessage() for r in caplog.records)
    # what ib_async asked for at start-up, each answered
    asked = {r.msg_id for r in gateway.requests}
    assert asked == {
        Incoming.REQ_POSITIONS,
        Incoming.REQ_ACCOUNT_UPDATES_MULTI,  # one per account
        Incoming.REQ_EXECUTIONS,
    }


async def test_connects_read_write_without_a_timeout_or_warning(
    gateway: Gateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ib_async")
    await connect(readonly=False, timeout=2.0)

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    # ... which adds the open and completed orders requests
    assert {r.msg_id for r in gateway.requests} == {
        Incoming.REQ_POSITIONS,
        Incoming.REQ_OPEN_ORDERS,
        Incoming.REQ_COMPLETED_ORDERS,
        Incoming.REQ_ACCOUNT_UPDATES_MULTI,
        Incoming.REQ_EXECUTIONS,
    }


async def test_snapshot_equals_the_portfolio_field_by_field(connect: Connect) -> None:
    ib = await connect()

    snapshot = await ib.reqPositionsAsync()

    assert ib_rows(snapshot) == rows(SAMPLE)
    # two accounts, and the zero, fractional and negative quantities as given
    by_key = {(p.account, p.contract.conId): p.position for p in snapshot}
    assert {a for a, _ in by_key} == {"DU111", "DU222"}
    assert by_key["DU111", 600001] == 0.0
    assert by_key["DU111", 756733] == 12.5
    assert by_key["DU222", 495512] == -1.0
    # ib_async's cache drops the closed one (anchors.md)
    assert (600001, "DU111") not in {(p.contract.conId, p.account) for p in ib.positions()}


async def test_single_account_gets_account_values_and_portfolio() -> None:
    one = Portfolio.of(p for p in SAMPLE.positions if p.account == "DU222")
    async with Gateway(one) as gw:
        ib = IB()
        await ib.connectAsync(gw.host, gw.port, clientId=1, readonly=True, timeout=2.0)
        try:
            values = {(v.tag, v.value) for v in ib.accountValues() if not v.modelCode}
            items = {(i.contract.conId, i.position, i.averageCost) for i in ib.portfolio()}
        finally:
            ib.disconnect()
    assert ("AccountCode", "DU222") in values
    assert items == {(500124, 7.0, 845.0), (495512, -1.0, 301234.5)}
    # ib_async subscribed with reqAccountUpdates for the single account
    assert Incoming.REQ_ACCOUNT_UPDATES in {r.msg_id for r in gw.requests}


async def test_current_time_and_managed_accounts(connect: Connect) -> None:
    ib = await connect()

    now = await ib.reqCurrentTimeAsync()

    assert now.tzinfo is not None
    assert now.year >= 2024
    ib.client.reqManagedAccts()
    await until(lambda: sorted(ib.wrapper.accounts) == ["DU111", "DU222"])


async def test_set_portfolio_pushes_changed_new_and_closed_positions(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    pushed: list[tuple[str, int, float]] = []
    ib.positionEvent += lambda p: pushed.append((p.account, p.contract.conId, p.position))
    changed = dataclasses.replace(SAMPLE.positions[0], position=-5)
    new = PortfolioPosition("DU222", 777, "IWM", "STK", 100, avg_cost=220.0)
    kept = SAMPLE.positions[1:4]  # the future (DU222, 495512) is gone: closed
    after = Portfolio.of([changed, *kept, new], accounts=SAMPLE.accounts)

    returned = gateway.set_portfolio(after)

    await until(lambda: len(pushed) == 3)
    assert sorted(pushed) == [
        ("DU111", 500123, -5.0),
        ("DU222", 777, 100.0),
        ("DU222", 495512, 0.0),
    ]
    assert len(returned) == 3
    assert ib_rows(await ib.reqPositionsAsync()) == rows(after)


async def test_cancel_positions_ends_the_subscription(gateway: Gateway, connect: Connect) -> None:
    cancelled, subscribed = await connect(), await connect()
    seen: dict[IB, list[float]] = {cancelled: [], subscribed: []}
    for ib, got in seen.items():
        ib.positionEvent += lambda p, got=got: got.append(p.position)
    cancelled.client.cancelPositions()
    await cancelled.reqCurrentTimeAsync()  # the cancel has been read

    gateway.set_portfolio(
        Portfolio.of([dataclasses.replace(SAMPLE.positions[0], position=9), *SAMPLE.positions[1:]])
    )

    await until(lambda: seen[subscribed] == [9.0])
    await cancelled.reqCurrentTimeAsync()  # an update sent before this answer has arrived
    assert seen[cancelled] == []


async def test_client_id_in_use_gets_326_and_is_closed(gateway: Gateway, connect: Connect) -> None:
    first = await connect(client_id=5)
    second = IB()
    codes: list[int] = []
    second.errorEvent += lambda req_id, code, message, contract: codes.append(code)
    api_errors: list[str] = []
    second.client.apiError += api_errors.append

    # ib_async waits its whole timeout after the close (anchors.md)
    with pytest.raises(TimeoutError):
        await second.connectAsync(gateway.host, gateway.port, clientId=5, timeout=0.5)

    assert codes == [ErrorCode.CLIENT_ID_IN_USE]
    assert any("Peer closed connection" in e for e in api_errors)
    assert gateway.client_ids == {5}
    assert ib_rows(await first.reqPositionsAsync()) == rows(SAMPLE)
    # the id is free again once its holder leaves
    first.disconnect()
    await until(lambda: gateway.client_ids == frozenset())
    assert (await connect(client_id=5)).isConnected()


async def test_many_clients_each_with_its_own_id(gateway: Gateway, connect: Connect) -> None:
    clients = [await connect() for _ in range(6)]

    snapshots = [await ib.reqPositionsAsync() for ib in clients]

    assert gateway.client_ids == {ib.client.clientId for ib in clients}
    assert all(ib_rows(s) == rows(SAMPLE) for s in snapshots)


async def test_orders_are_refused_and_change_no_position(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect(readonly=False)
    errors: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, message, contract: errors.append((req_id, code, message))

    trade = ib.placeOrder(Stock("SPY", "SMART", "USD"), LimitOrder("BUY", 10, 1.0))
    await until(lambda: len(errors) == 1)
    ib.client.cancelOrder(trade.order.orderId)
    ib.client.reqGlobalCancel()
    await until(lambda: len(errors) == 3)

    read_only = ErrorCode.SERVER_ERROR_VALIDATING
    assert [(req_id, code) for req_id, code, _ in errors] == [
        (trade.order.orderId, read_only),
        (trade.order.orderId, read_only),
        (-1, read_only),
    ]
    assert "Read-Only mode" in errors[0][2]
    assert trade.orderStatus.status == "ValidationError"
    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)
    assert gateway.portfolio == SAMPLE


async def test_unsupported_request_fails_fast_and_the_connection_lives(connect: Connect) -> None:
    ib = await connect()
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, message, contract: errors.append((req_id, code))

    details = await ib.reqContractDetailsAsync(Stock("SPY", "SMART", "USD"))

    assert details == []  # ended by the error instead of hanging
    assert [code for _, code in errors] == [ErrorCode.SERVER_ERROR_PROCESSING]
    assert errors[0][0] >= 0  # addressed to the request's own id
    assert ib.isConnected()
    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)


async def test_shutdown_disconnects_clients() -> None:
    async with Gateway(SAMPLE) as gw:
        ib = IB()
        await ib.connectAsync(gw.host, gw.port, clientId=1, readonly=True, timeout=2.0)
        assert ib.isConnected()
    await until(lambda: not ib.isConnected())
