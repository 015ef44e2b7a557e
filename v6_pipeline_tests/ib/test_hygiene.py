"""Misbehaving connections are closed with a log line; the server and its other
clients carry on. Raw clients built from `protocol` send what real clients won't."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from v6_pipeline.ib import protocol
from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import Gateway, Portfolio
from v6_pipeline.ib.protocol import Incoming, Outgoing
from v6_pipeline.ib.snapshot import take_snapshot_async
from v6_pipeline_tests.ib.support import (
    SAMPLE,
    Connect,
    RawClient,
    client_hello,
    fields,
    ib_rows,
    rows,
    start_api,
    until,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("opening", "logged"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a TWS API client"),
        (protocol.API_PREFIX + protocol.prefix(b"hello"), "not a version range"),
        (client_hello(100, 150), "no common version"),
        (client_hello(179, 200), "no common version"),
        (protocol.API_PREFIX + struct.pack(">I", 2**31), "over the limit"),
        (
            client_hello(157, 178) + protocol.frame(Incoming.REQ_CURRENT_TIME, 1),
            "expected startApi",
        ),
    ],
    ids=["http", "garbage-version", "too-old", "too-new", "oversized", "request-before-start"],
)
async def test_bad_opening_closes_that_connection_only(
    gateway: Gateway,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    opening: bytes,
    logged: str,
) -> None:
    ib = await connect()
    seen: list[float] = []
    ib.positionEvent += lambda p: seen.append(p.position)
    bad = await RawClient.open(gateway.host, gateway.port)

    bad.writer.write(opening)

    assert await bad.closed_by_server()
    assert logged in caplog.text
    await until(lambda: gateway.connections == 1)
    # the good client is still served, live updates included
    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)
    gateway.set_portfolio(Portfolio.of(SAMPLE.positions[1:], SAMPLE.accounts))
    await until(lambda: seen[-1:] == [0.0])


async def test_oversized_frame_after_start_closes_that_connection_only(
    gateway: Gateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    ib = await connect()
    raw = await RawClient.open(gateway.host, gateway.port)
    await raw.start(client_id=900)

    raw.writer.write(struct.pack(">I", protocol.MAX_FRAME_LEN + 1) + b"x" * 1024)

    assert await raw.closed_by_server()
    assert "over the limit" in caplog.text
    await until(lambda: gateway.client_ids == {ib.client.clientId})
    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)


@pytest.mark.parametrize(
    "sent",
    [b"", protocol.API_PREFIX, client_hello(157, 178)[:-3]],
    ids=["silent", "prefix-only", "half-a-frame"],
)
async def test_idle_client_before_start_is_closed(
    caplog: pytest.LogCaptureFixture, sent: bytes
) -> None:
    async with Gateway(SAMPLE, handshake_timeout=0.2) as gw:
        raw = await RawClient.open(gw.host, gw.port)
        raw.writer.write(sent)

        assert await raw.closed_by_server()
        assert "no handshake and startApi within 0.2s" in caplog.text
        await until(lambda: gw.connections == 0)


async def test_client_that_leaves_mid_handshake_is_forgotten(gateway: Gateway) -> None:
    raw = await RawClient.open(gateway.host, gateway.port)
    raw.writer.write(client_hello(157, 178)[:6])
    await until(lambda: gateway.connections == 1)

    raw.close()

    await until(lambda: gateway.connections == 0)


@pytest.mark.parametrize(("high", "count"), [(157, 5), (178, 6)])
async def test_error_frame_follows_the_negotiated_version(
    gateway: Gateway, high: int, count: int
) -> None:
    raw = await RawClient.open(gateway.host, gateway.port)
    await raw.start(client_id=1, low=100, high=high)
    assert raw.server_version == high

    raw.send(Incoming.REQ_MKT_DATA, 11, 77, 0, "SPY")  # not served

    error = await raw.read()
    assert error[:4] == fields(Outgoing.ERR_MSG, 2, 77, ErrorCode.SERVER_ERROR_PROCESSING)
    assert len(error) == count  # advancedOrderRejectJson only from 166
    raw.send(Incoming.REQ_CURRENT_TIME, 1)  # the connection lives on
    assert (await raw.read())[:2] == fields(Outgoing.CURRENT_TIME, 1)


async def test_nothing_is_sent_before_start_api(gateway: Gateway) -> None:
    raw = await RawClient.open(gateway.host, gateway.port)
    raw.writer.write(client_hello(157, 178))
    assert len(await raw.read()) == 2  # version and connection time only

    raw.writer.write(start_api(3))

    accounts, next_id = await raw.read(), await raw.read()
    assert accounts == fields(Outgoing.MANAGED_ACCTS, 1, "DU111,DU222")
    assert next_id == fields(Outgoing.NEXT_VALID_ID, 1, 1)


async def test_malformed_known_request_gets_an_error_and_the_connection_lives(
    gateway: Gateway,
) -> None:
    raw = await RawClient.open(gateway.host, gateway.port)
    await raw.start(client_id=1)

    raw.send(Incoming.REQ_EXECUTIONS, 3, "not-a-number")  # a bad request id

    error = await raw.read()
    assert error[:4] == fields(Outgoing.ERR_MSG, 2, -1, ErrorCode.SERVER_ERROR_READING)
    raw.send(Incoming.REQ_POSITIONS, 1)
    frames = [await raw.read() for _ in range(len(SAMPLE.positions) + 1)]
    assert frames[-1] == fields(Outgoing.POSITION_END, 1)


async def test_non_numeric_message_id_closes_that_connection(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    raw = await RawClient.open(gateway.host, gateway.port)
    await raw.start(client_id=1)

    raw.send(f"x{Incoming.REQ_POSITIONS}", 1)

    assert await raw.closed_by_server()
    assert "is not a number" in caplog.text


async def test_api_clients_over_the_limit_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    async with Gateway(SAMPLE, max_clients=2) as gw:
        first = await RawClient.open(gw.host, gw.port)
        second = await RawClient.open(gw.host, gw.port)
        await first.start(client_id=1)
        await second.start(client_id=2)

        third = await RawClient.open(gw.host, gw.port)

        assert await third.closed_by_server()
        assert "already 2 API clients" in caplog.text
        assert gw.client_ids == {1, 2}


async def test_idle_handshakes_over_the_limit_make_room_for_a_new_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Gateway(SAMPLE, max_handshakes=2) as gw:
        oldest = await RawClient.open(gw.host, gw.port)
        younger = await RawClient.open(gw.host, gw.port)
        await until(lambda: gw.connections == 2)

        newest = await RawClient.open(gw.host, gw.port)

        assert await oldest.closed_by_server()
        assert "oldest of 2 unfinished handshakes" in caplog.text
        await newest.start(client_id=1)
        await younger.start(client_id=2)
        assert gw.client_ids == {1, 2}


async def test_idle_connections_do_not_starve_a_snapshot() -> None:
    # Port scanners, health checks and half-dead clients hold connections that never
    # say a word; the snapshot behind them must still be served at once.
    async with Gateway(SAMPLE) as gw:  # the default limits and handshake timeout
        idle = [await asyncio.open_connection(gw.host, gw.port) for _ in range(40)]
        started = time.monotonic()

        snap = await take_snapshot_async(gw.host, gw.port, 7, timeout_s=15)

        assert time.monotonic() - started < 5.0
        assert (snap.attempts, snap.positions.height) == (1, len(SAMPLE.positions))
        for _, writer in idle:
            writer.close()


async def test_only_ascii_goes_out(gateway: Gateway) -> None:
    raw = await RawClient.open(gateway.host, gateway.port)
    await raw.start(client_id=1)
    raw.send(Incoming.REQ_POSITIONS, 1)
    raw.send(Incoming.REQ_ACCOUNT_UPDATES, 2, 1, "DU111")
    raw.send(Incoming.REQ_CURRENT_TIME, 1)

    payloads = [await protocol.read_payload(raw.reader)]
    while protocol.fields_of(payloads[-1])[0] != str(Outgoing.CURRENT_TIME):
        payloads.append(await protocol.read_payload(raw.reader))

    assert len(payloads) > len(SAMPLE.positions)
    assert all(p.isascii() for p in payloads)
