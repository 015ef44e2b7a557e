"""The pure parts: protocol encoding and negotiation, portfolio parsing, fault names."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from pathlib import Path

import pytest

from v6_pipeline.ib import protocol
from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import (
    Fault,
    FaultError,
    FaultName,
    Portfolio,
    PortfolioError,
    PortfolioPosition,
    load_portfolio,
    parse_fault,
    parse_portfolio,
)
from v6_pipeline.ib.gateway.answers import positions as answer_positions
from v6_pipeline_tests.ib.support import SAMPLE

# --- protocol --------------------------------------------------------------------


def test_frame_is_length_prefixed_nul_terminated_ascii() -> None:
    assert (
        protocol.frame(49, 1, 1.5, 3.0, True, "")
        == b"\x00\x00\x00\x0e49\x001\x001.5\x003\x001\x00\x00"
    )


def test_frame_refuses_non_ascii() -> None:
    with pytest.raises(UnicodeEncodeError):
        protocol.frame(4, "Zürich")


@pytest.mark.parametrize(
    ("hello", "version"),
    [
        (b"v157..178", 178),  # ib_async
        (b"v100..157", 157),  # ibapi from the package registry
        (b"v100..226 +PACEAPI", 178),  # newer ibapi, with options
        (b"v170", 170),
    ],
)
def test_negotiates_min_of_client_max_and_178(hello: bytes, version: int) -> None:
    assert protocol.negotiate(protocol.parse_hello(hello)) == version


@pytest.mark.parametrize("hello", [b"v100..150", b"v179..200", b"x157..178", b"v157..", b""])
def test_refuses_what_it_cannot_speak(hello: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.negotiate(protocol.parse_hello(hello))


def test_position_frame_has_exactly_16_fields() -> None:
    fields = protocol.fields_of(protocol.position(SAMPLE.positions[0])[4:])
    assert fields == [
        "61", "3", "DU111", "500123", "SPY", "OPT", "20270115", "600", "C", "100",
        "SMART", "USD", "SPY   270115C00600000", "SPY", "-3", "1234.5",
    ]  # fmt: skip


@pytest.mark.parametrize(("version", "count"), [(157, 5), (165, 5), (166, 6), (178, 6)])
def test_error_layout_follows_the_version(version: int, count: int) -> None:
    frame = protocol.error(version, 7, ErrorCode.SERVER_ERROR_VALIDATING, "x")
    assert len(protocol.fields_of(frame[4:])) == count


@pytest.mark.parametrize(
    ("fields", "req_id"),
    [(["3", "42", "0"], 42), (["4", "1", "43"], 43), (["58", "1"], -1), (["9", "8", "x"], -1)],
)
def test_request_id_is_found_where_each_request_keeps_it(fields: list[str], req_id: int) -> None:
    assert protocol.request_id(fields) == req_id


def test_read_payload_refuses_an_oversized_frame_before_reading_it() -> None:
    async def read() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(protocol.prefix(b"x" * 100))
        return await protocol.read_payload(reader, max_len=99)

    with pytest.raises(protocol.ProtocolError, match="over the limit"):
        asyncio.run(read())


def test_error_codes_are_ibs() -> None:
    """The one place the numbers are written down again: IB's documented values (TWS API
    "Message Codes"). Everything else uses the names."""
    assert {code.name: code.value for code in ErrorCode} == {
        "SERVER_ERROR_READING": 320,
        "SERVER_ERROR_VALIDATING": 321,
        "SERVER_ERROR_PROCESSING": 322,
        "CLIENT_ID_IN_USE": 326,
        "NOT_CONNECTED": 504,
        "CONNECTIVITY_LOST": 1100,
        "CONNECTIVITY_RESTORED_DATA_LOST": 1101,
        "CONNECTIVITY_RESTORED_DATA_MAINTAINED": 1102,
        "SOCKET_PORT_RESET": 1300,
        "CONNECTIVITY_BROKEN": 2110,
        "COMPETING_LIVE_SESSION": 10197,
    }


def test_fields_must_be_nul_terminated() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.fields_of(b"49\x001")


# --- portfolio -------------------------------------------------------------------

INTERFACES_EXAMPLE = {
    "accounts": ["DU111", "DU222"],
    "positions": [
        {"account": "DU111", "conid": 500123, "symbol": "SPY", "sec_type": "OPT",
         "expiry": "20270115", "strike": 600.0, "right": "C", "multiplier": "100",
         "exchange": "SMART", "currency": "USD",
         "local_symbol": "SPY   270115C00600000", "trading_class": "SPY",
         "position": -3, "avg_cost": 1234.5},
    ],
}  # fmt: skip


def test_the_interfaces_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.json"
    path.write_text(json.dumps(INTERFACES_EXAMPLE))

    portfolio = load_portfolio(path)

    assert portfolio.accounts == ("DU111", "DU222")
    assert portfolio.positions == (SAMPLE.positions[0],)


def test_only_five_fields_are_required_and_accounts_default() -> None:
    portfolio = parse_portfolio(
        {
            "positions": [
                {"account": "U1", "conid": 7, "symbol": "X", "sec_type": "STK", "position": 0.25}
            ]
        }
    )
    assert portfolio.accounts == ("U1",)
    assert portfolio.positions == (PortfolioPosition("U1", 7, "X", "STK", 0.25),)
    assert portfolio.positions[0].avg_cost == 0.0
    assert portfolio.positions[0].expiry == ""


def test_yaml_reads_unquoted_expiry_and_multiplier_as_text(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(
        "accounts: [DU1]\npositions:\n"
        "  - {account: DU1, conid: 5, symbol: ES, sec_type: FUT, expiry: 20261218,\n"
        "     multiplier: 50, position: -2}\n"
    )
    (row,) = load_portfolio(path).positions
    assert (row.expiry, row.multiplier, row.position) == ("20261218", "50", -2.0)


def entry(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "account": "DU111", "conid": 1, "symbol": "SPY", "sec_type": "STK", "position": 1,
    }  # fmt: skip
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "expected a mapping with 'positions'"),
        ({"positions": {}}, "positions: expected a list"),
        ({"positions": [entry(), 5]}, "positions[1]: expected a mapping"),
        ({"positions": [entry(conid=None)]}, "positions[0].conid: required field missing"),
        ({"positions": [entry(conid="12a")]}, "positions[0].conid: expected an integer"),
        ({"positions": [entry(conid=True)]}, "positions[0].conid: expected an integer"),
        ({"positions": [entry(position="3")]}, "positions[0].position: expected a number"),
        ({"positions": [entry(position=float("nan"))]}, "positions[0].position: must be finite"),
        ({"positions": [entry(position=10**400)]}, "positions[0].position: must be finite"),
        ({"positions": [entry(avg_cost=-(10**400))]}, "positions[0].avg_cost: must be finite"),
        ({"positions": [entry(conid=2**63)]}, "positions[0].conid: must fit in 64 bits"),
        ({"positions": [entry(conid=-(2**63) - 1)]}, "positions[0].conid: must fit in 64 bits"),
        ({"positions": [entry(conid=str(2**63))]}, "positions[0].conid: must fit in 64 bits"),
        ({"positions": [entry(symbol=["x"])]}, "positions[0].symbol: expected a string"),
        ({"positions": [entry(symbol="SPŸ")]}, "positions[0].symbol: must be printable ASCII"),
        ({"positions": [entry(symbol="A\x00B")]}, "positions[0].symbol: must be printable ASCII"),
        ({"positions": [entry(qty=3)]}, "positions[0]: unknown field 'qty'"),
        ({"positions": [entry(), entry()]}, "positions[1]: duplicates positions[0]"),
        ({"accounts": ["DU9"], "positions": [entry()]}, "positions[0].account: 'DU111' is not"),
        ({"accounts": ["A,B"], "positions": []}, "accounts[0]: must be non-empty, without commas"),
        ({"positions": []}, "accounts: at least one account is needed"),
        ({"positions": [], "extra": 1}, "unknown top-level field 'extra'"),
    ],
)
def test_errors_name_the_entry_and_field(obj: object, message: str) -> None:
    with pytest.raises(PortfolioError) as raised:
        parse_portfolio(obj)
    assert message in str(raised.value).replace("must be a finite number", "must be finite")


@pytest.mark.parametrize(
    ("field", "value"),
    [("conid", 2**63), ("position", math.inf), ("avg_cost", math.nan), ("strike", -math.inf)],
)
def test_a_portfolio_built_in_python_is_checked_too(field: str, value: float) -> None:
    row = dataclasses.replace(SAMPLE.positions[1], **{field: value})
    with pytest.raises(PortfolioError, match=rf"positions\[1\]\.{field}: must"):
        Portfolio.of([SAMPLE.positions[0], row])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.json", "{", "not valid JSON"),
        ("p.yaml", "positions: [", "not valid YAML"),
        ("missing.json", None, "cannot read"),
    ],
)
def test_file_errors_name_the_file(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(PortfolioError, match=message) as raised:
        load_portfolio(path)
    assert str(path) in str(raised.value)


def test_changes_since_lists_changed_new_then_closed() -> None:
    changed = dataclasses.replace(SAMPLE.positions[0], position=-4)
    new = PortfolioPosition("DU222", 9, "X", "STK", 1)
    after = Portfolio.of([changed, *SAMPLE.positions[1:3], new], SAMPLE.accounts)

    assert after.changes_since(SAMPLE) == (
        changed,
        new,
        SAMPLE.positions[3].closed(),
        SAMPLE.positions[4].closed(),
    )
    assert SAMPLE.changes_since(SAMPLE) == ()


# --- faults ----------------------------------------------------------------------


_WITH_ARGUMENT = (FaultName.DELAY, FaultName.RESTART, FaultName.ERROR_MID_POSITIONS)


@pytest.mark.parametrize("name", [n for n in FaultName if n not in _WITH_ARGUMENT])
def test_every_fault_name_parses(name: FaultName) -> None:
    assert parse_fault(str(name)) == Fault(name)
    assert str(parse_fault(str(name))) == name.value


@pytest.mark.parametrize("name", [FaultName.DELAY, FaultName.RESTART])
def test_delay_and_restart_take_seconds(name: FaultName) -> None:
    assert parse_fault(f"{name}:2.5") == Fault(name, 2.5)
    assert str(Fault(name, 2.5)) == f"{name}:2.5"


@pytest.mark.parametrize(
    "spelling",
    ["nope", "delay", "delay:", "delay:-1", "delay:inf", "no-position-end:3", "restart:x"],
)
def test_bad_faults_are_refused(spelling: str) -> None:
    with pytest.raises(FaultError):
        parse_fault(spelling)


def test_drop_mid_positions_sends_half_and_closes() -> None:
    answer = answer_positions(SAMPLE, [parse_fault("drop-mid-positions")], 178)
    assert (answer.count, answer.close, answer.subscribe) == (
        len(SAMPLE.positions) // 2,
        True,
        False,
    )
    assert answer.payload == b"".join(protocol.position(p) for p in SAMPLE.positions[:2])
