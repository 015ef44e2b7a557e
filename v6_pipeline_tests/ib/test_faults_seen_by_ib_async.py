"""Each fault as the ib_async client sees it (anchors.md describes the real gateway's)."""

from __future__ import annotations

import asyncio
import math

import pytest
from ib_async import IB

from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import Gateway
from v6_pipeline_tests.ib.support import SAMPLE, Connect, ib_rows, rows, until

pytestmark = pytest.mark.anyio

N = len(SAMPLE.positions)


def record_positions(ib: IB) -> list[tuple[str, int, float]]:
    seen: list[tuple[str, int, float]] = []
    ib.positionEvent += lambda p: seen.append((p.account, p.contract.conId, p.position))
    return seen


def record_errors(ib: IB) -> list[int]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, message, contract: codes.append(code)
    return codes


async def test_no_position_end_leaves_the_request_hanging(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    seen = record_positions(ib)
    gateway.set_faults(["no-position-end"])

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqPositionsAsync(), 0.3)

    assert len(seen) == N  # every position came, the end never did


async def test_no_position_end_at_connect_is_only_logged(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.set_faults(["no-position-end"])
    ib = IB()
    try:
        await ib.connectAsync(gateway.host, gateway.port, clientId=1, readonly=True, timeout=0.3)
        assert ib.isConnected()
        assert "positions request timed out" in caplog.text
        assert len(ib.positions()) == N - 1  # the cache drops the closed one
    finally:
        ib.disconnect()


async def test_drop_mid_positions_closes_after_half(gateway: Gateway, connect: Connect) -> None:
    ib = await connect()
    seen = record_positions(ib)
    gateway.set_faults(["drop-mid-positions"])

    with pytest.raises(ConnectionError):
        await ib.reqPositionsAsync()

    assert len(seen) == N // 2
    assert not ib.isConnected()


async def test_malformed_position_is_skipped_by_the_decoder(
    gateway: Gateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    ib = await connect()
    gateway.set_faults(["malformed-position"])

    snapshot = await ib.reqPositionsAsync()

    # the request completes and looks whole, one position short
    malformed = SAMPLE.positions[0].key
    assert ib_rows(snapshot) == [r for r in rows(SAMPLE) if r[:2] != malformed]
    assert "Error handling fields" in caplog.text


async def test_duplicate_positions_come_wrong_then_true(gateway: Gateway, connect: Connect) -> None:
    ib = await connect()
    gateway.set_faults(["duplicate-positions"])

    snapshot = await ib.reqPositionsAsync()

    assert len(snapshot) == 2 * N
    last = {(p.account, p.contract.conId): p for p in snapshot}
    assert ib_rows(last.values()) == rows(SAMPLE)
    first: dict[tuple[str, int], float] = {}
    for p in snapshot:
        first.setdefault((p.account, p.contract.conId), p.position)
    assert all(first[k] != last[k].position for k in last)


async def test_client_id_in_use_refuses_start_api(gateway: Gateway) -> None:
    gateway.set_faults(["client-id-in-use"])
    ib = IB()
    codes = record_errors(ib)

    with pytest.raises(TimeoutError):
        await ib.connectAsync(gateway.host, gateway.port, clientId=42, timeout=0.3)

    assert codes == [ErrorCode.CLIENT_ID_IN_USE]
    assert gateway.client_ids == frozenset()


async def test_connectivity_lost_answers_positions_with_an_error(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    codes = record_errors(ib)
    seen = record_positions(ib)
    gateway.set_faults(["connectivity-lost"])

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqPositionsAsync(), 0.3)

    assert codes == [ErrorCode.CONNECTIVITY_LOST]
    assert seen == []
    assert ib.isConnected()


async def test_delay_holds_positions_back_but_not_other_answers(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    gateway.set_faults(["delay:0.3"])

    positions = asyncio.ensure_future(ib.reqPositionsAsync())
    await ib.reqCurrentTimeAsync()  # asked after, answered first
    assert not positions.done()

    assert ib_rows(await positions) == rows(SAMPLE)


async def test_faults_can_be_cleared(gateway: Gateway, connect: Connect) -> None:
    gateway.set_faults(["malformed-position", "no-position-end"])
    gateway.set_faults([])
    ib = await connect()

    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)


async def test_faults_combine(gateway: Gateway, connect: Connect) -> None:
    ib = await connect()
    seen = record_positions(ib)
    gateway.set_faults(["duplicate-positions", "no-position-end"])

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqPositionsAsync(), 0.3)
    await until(lambda: len(seen) == 2 * N)


async def test_nonfinite_position_reaches_ib_async_as_nan_and_inf(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    gateway.set_faults(["nonfinite-position"])

    quantities = [p.position for p in await ib.reqPositionsAsync()]

    # ib_async takes both as floats, without a word: the snapshot must refuse them
    assert math.isnan(quantities[0])
    assert quantities[-1] == math.inf
    assert quantities[1:-1] == [p.position for p in SAMPLE.positions[1:-1]]


async def test_nonfinite_avg_cost_reaches_ib_async_as_nan(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    gateway.set_faults(["nonfinite-avg-cost"])

    costs = [p.avgCost for p in await ib.reqPositionsAsync()]

    assert math.isnan(costs[0])
    assert costs[1:] == [p.avg_cost for p in SAMPLE.positions[1:]]


async def test_a_huge_conid_reaches_ib_async_as_a_python_int(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    gateway.set_faults(["huge-conid"])

    conids = [p.contract.conId for p in await ib.reqPositionsAsync()]

    # ib_async takes any integer: the snapshot must refuse what int64 cannot hold
    assert conids[0] == 2**64
    assert conids[1:] == [p.conid for p in SAMPLE.positions[1:]]
