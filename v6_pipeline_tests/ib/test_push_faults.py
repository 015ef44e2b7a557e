"""Faults on what a subscribed client is pushed, and the connectivity notices, as bytes
and as ib_async sees them."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from ib_async import IB

from v6_pipeline.ib import protocol
from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import Fault, Gateway, Portfolio, parse_fault
from v6_pipeline.ib.gateway.answers import (
    HUGE_CONID,
    MALFORMED_QUANTITY,
    NAN,
    UNKNOWN_ACCOUNT,
    huge_conid_position,
    notices,
    position_updates,
)
from v6_pipeline_tests.ib.support import SAMPLE, Connect, until

CHANGES = SAMPLE.positions[:2]


def faults(*spellings: str) -> list[Fault]:
    return [parse_fault(s) for s in spellings]


def test_a_push_without_faults_is_one_frame_per_change() -> None:
    assert position_updates(CHANGES, []) == b"".join(protocol.position(p) for p in CHANGES)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "repeat-updates",
            [protocol.position(CHANGES[0])] * 2 + [protocol.position(CHANGES[1])] * 2,
        ),
        (
            "unknown-account",
            [
                *(protocol.position(p) for p in CHANGES),
                protocol.position(dataclasses.replace(CHANGES[0], account=UNKNOWN_ACCOUNT)),
            ],
        ),
        (
            "malformed-position",
            [protocol.position(CHANGES[0], MALFORMED_QUANTITY), protocol.position(CHANGES[1])],
        ),
        (
            "nonfinite-avg-cost",
            [protocol.position(CHANGES[0], avg_cost=NAN), protocol.position(CHANGES[1])],
        ),
        (
            "huge-conid",
            [
                protocol.position(dataclasses.replace(CHANGES[0], conid=HUGE_CONID)),
                protocol.position(CHANGES[1]),
            ],
        ),
        (
            "huge-conid-push",
            [
                *(protocol.position(p) for p in CHANGES),
                protocol.position(huge_conid_position(CHANGES[0].account)),
            ],
        ),
        ("delay:5", [protocol.position(p) for p in CHANGES]),  # answers only
        ("duplicate-positions", [protocol.position(p) for p in CHANGES]),  # answers only
    ],
)
def test_push_faults_bend_the_pushed_frames(fault: str, expected: list[bytes]) -> None:
    assert position_updates(CHANGES, faults(fault)) == b"".join(expected)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("notice-connectivity-lost", ErrorCode.CONNECTIVITY_LOST),
        ("notice-restored-data-lost", ErrorCode.CONNECTIVITY_RESTORED_DATA_LOST),
        ("notice-restored-data-kept", ErrorCode.CONNECTIVITY_RESTORED_DATA_MAINTAINED),
    ],
)
def test_notice_faults_are_error_frames_of_their_code(fault: str, code: ErrorCode) -> None:
    frame = notices(faults(fault, "delay:1"), 178)
    fields = protocol.fields_of(frame[4:])
    assert fields[:4] == [str(protocol.Outgoing.ERR_MSG), "2", "-1", str(code.value)]
    assert "Connectivity between IB and Trader Workstation" in fields[4]
    assert notices(faults("delay:1", "connectivity-lost"), 178) == b""


def record(ib: IB) -> tuple[list[int], list[tuple[str, int, float]]]:
    codes: list[int] = []
    seen: list[tuple[str, int, float]] = []
    ib.errorEvent += lambda req_id, code, message, contract: codes.append(code)
    ib.positionEvent += lambda p: seen.append((p.account, p.contract.conId, p.position))
    return codes, seen


@pytest.mark.anyio
async def test_notices_reach_the_connected_clients_once_when_set(
    gateway: Gateway, connect: Connect
) -> None:
    first, second = await connect(), await connect()
    (codes_1, _), (codes_2, _) = record(first), record(second)
    gateway.set_faults(["notice-restored-data-lost"])
    await until(lambda: codes_1 and codes_2)
    gateway.set_faults(["notice-restored-data-lost", "delay:0"])  # still set: not again
    later = await connect()
    codes_3, _ = record(later)
    await later.reqCurrentTimeAsync()  # a round trip: anything sent before it has arrived
    await first.reqCurrentTimeAsync()
    assert codes_1 == codes_2 == [ErrorCode.CONNECTIVITY_RESTORED_DATA_LOST]
    assert codes_3 == []
    gateway.set_faults(["notice-connectivity-lost"])
    await until(lambda: len(codes_3) == 1)
    assert codes_3 == [ErrorCode.CONNECTIVITY_LOST]


@pytest.mark.anyio
async def test_a_subscribed_client_is_pushed_repeats_and_foreign_accounts(
    gateway: Gateway, connect: Connect
) -> None:
    ib = await connect()
    _, seen = record(ib)
    await ib.reqPositionsAsync()
    seen.clear()
    gateway.set_faults(["repeat-updates", "unknown-account"])
    changed = dataclasses.replace(SAMPLE.positions[0], position=-1.0)
    gateway.set_portfolio(Portfolio(SAMPLE.accounts, (changed, *SAMPLE.positions[1:])))
    await until(lambda: len(seen) == 3)
    await asyncio.sleep(0.05)
    assert seen == [
        ("DU111", 500123, -1.0),
        ("DU111", 500123, -1.0),
        (UNKNOWN_ACCOUNT, 500123, -1.0),
    ]
