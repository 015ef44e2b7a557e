"""The TWS API socket protocol, as far as the gateway emulator speaks it.

The one place for the wire format: message ids, framing, the handshake, field
encoding and the layouts that depend on the negotiated server version. The
gateway, its faults and the tests all build and read frames through here.

Checked against ib_async 2.1.0 (`client.py`, `decoder.py`) and IB's ibapi
9.81.1.post1 (`client.py`, `decoder.py`, `comm.py`).
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Protocol

# The client opens with these four bytes, then one length-prefixed version frame.
API_PREFIX = b"API\0"
# At 201+ IB's client switches to binary ids and protobuf; 178 keeps both ib_async
# (which asks for 157..178) and ibapi on identical text layouts.
SERVER_VERSION_MAX = 178
# ibapi 9.81.1.post1 asks for 100..157; below 157 ib_async disconnects, and the
# layouts here are the ones of 157 and later.
SERVER_VERSION_MIN = 157
# From this version an error frame carries a trailing advancedOrderRejectJson field.
ADVANCED_ERROR_VERSION = 166
# Requests are small (the largest, placeOrder, is a few hundred bytes); a longer
# length prefix is garbage or an attack, never a request.
MAX_FRAME_LEN = 64 * 1024

_HEADER = struct.Struct(">I")
_HANDSHAKE = re.compile(rb"v(\d{1,4})(?:\.\.(\d{1,4}))?(?: (.*))?", re.DOTALL)


class ProtocolError(Exception):
    """The peer broke the framing or the handshake: that connection must close."""


class Incoming(IntEnum):
    """Message ids a client sends (ibapi `message.OUT`)."""

    REQ_MKT_DATA = 1
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    EXERCISE_OPTIONS = 21
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_COMPLETED_ORDERS = 99


class Outgoing(IntEnum):
    """Message ids the gateway sends (ibapi `message.IN`)."""

    ERR_MSG = 4
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    MANAGED_ACCTS = 15
    CURRENT_TIME = 49
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    COMPLETED_ORDERS_END = 102


# Where a request carries the id the client expects back in an error frame (ib_async
# and ibapi agree at server versions 157..178): after a version field in most older
# requests, first in placeOrder (the order id), historical data, scanner and the
# requests from 78 on. Absent: the error goes to id -1.
_AFTER_VERSION = [1, 2, 4, 7, 9, 10, 11, 21, 23, 25, 50, 51, 52, 53, 54, 55, 56, 57]
_AFTER_VERSION += [62, 63, 67, 68, 69, 70, 74, 75, 76, 77]
_FIRST = [3, 20, 22, 78, 79, 81, 83, 84, 86, 87, 88, 89, 90, 92, 93, 94, 95, 96, 97, 98]
_FIRST += [100, 101, 102, 103, 104]
_REQUEST_ID_INDEX: dict[int, int] = {
    **dict.fromkeys(_AFTER_VERSION, 2),
    **dict.fromkeys(_FIRST, 1),
}
NO_REQUEST_ID = -1


class PositionRow(Protocol):
    """What a position frame is made of (the emulator's `PortfolioPosition` is one)."""

    account: str
    conid: int
    symbol: str
    sec_type: str
    expiry: str
    strike: float
    right: str
    multiplier: str
    exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    position: float
    avg_cost: float


# --- fields and frames ---------------------------------------------------------


def text(value: object) -> str:
    """One field's text, as IB writes it: integral numbers without `.0`."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def frame(*fields: object) -> bytes:
    """A length-prefixed frame of NUL-terminated ASCII fields.

    Raises UnicodeEncodeError on a non-ASCII field: nothing but ASCII goes out.
    """
    return prefix("".join(f"{text(f)}\0" for f in fields).encode("ascii"))


def prefix(payload: bytes) -> bytes:
    """`payload` behind its 4-byte big-endian length."""
    return _HEADER.pack(len(payload)) + payload


def fields_of(payload: bytes) -> list[str]:
    """The fields of one frame's payload (without the length prefix)."""
    if not payload.endswith(b"\0"):
        raise ProtocolError("frame does not end with a NUL terminator")
    return payload[:-1].decode("ascii", errors="backslashreplace").split("\0")


async def read_payload(reader: asyncio.StreamReader, max_len: int = MAX_FRAME_LEN) -> bytes:
    """The next frame's payload. Raises ProtocolError before buffering an oversized one,
    and asyncio.IncompleteReadError when the peer closes."""
    (length,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if length > max_len:
        raise ProtocolError(f"frame length {length} over the limit of {max_len}")
    return await reader.readexactly(length)


async def read_fields(reader: asyncio.StreamReader, max_len: int = MAX_FRAME_LEN) -> list[str]:
    """The next frame, split into fields."""
    return fields_of(await read_payload(reader, max_len))


def request_id(fields: Sequence[str]) -> int:
    """The request id a client expects back in an error answering `fields`."""
    try:
        index = _REQUEST_ID_INDEX[int(fields[0])]
        return int(fields[index])
    except (KeyError, IndexError, ValueError):
        return NO_REQUEST_ID


# --- handshake -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The client's opening: the range of server versions it speaks."""

    min_version: int
    max_version: int
    options: str = ""


def parse_hello(payload: bytes) -> Hello:
    match = _HANDSHAKE.fullmatch(payload)
    if match is None:
        raise ProtocolError(f"not a version range: {payload[:40]!r}")
    low = int(match[1])
    high = int(match[2] or match[1])
    options = (match[3] or b"").decode("ascii", errors="backslashreplace")
    return Hello(low, high, options)


def negotiate(hello: Hello) -> int:
    """The server version to speak: min(client max, 178), if the client goes that low."""
    version = min(hello.max_version, SERVER_VERSION_MAX)
    if version < max(hello.min_version, SERVER_VERSION_MIN):
        raise ProtocolError(
            f"no common version: client speaks {hello.min_version}..{hello.max_version}, "
            f"gateway {SERVER_VERSION_MIN}..{SERVER_VERSION_MAX}"
        )
    return version


def server_hello(version: int, now: datetime) -> bytes:
    """The handshake answer: server version and connection time (`YYYYMMDD HH:MM:SS UTC`)."""
    return frame(version, now.strftime("%Y%m%d %H:%M:%S UTC"))


# --- messages the gateway sends ------------------------------------------------


def error(server_version: int, req_id: int, code: int, message: str) -> bytes:
    """An error frame in the layout of the negotiated version (a wrong layout is
    silently dropped by both clients)."""
    if server_version >= ADVANCED_ERROR_VERSION:
        return frame(Outgoing.ERR_MSG, 2, req_id, code, message, "")
    return frame(Outgoing.ERR_MSG, 2, req_id, code, message)


def managed_accounts(accounts: Iterable[str]) -> bytes:
    return frame(Outgoing.MANAGED_ACCTS, 1, ",".join(accounts))


def next_valid_id(order_id: int) -> bytes:
    return frame(Outgoing.NEXT_VALID_ID, 1, order_id)


def current_time(epoch_seconds: int) -> bytes:
    return frame(Outgoing.CURRENT_TIME, 1, epoch_seconds)


def position(row: PositionRow, quantity: object = None, avg_cost: object = None) -> bytes:
    """A position frame: exactly 16 fields (ib_async unpacks them strictly).

    `quantity` and `avg_cost` replace the row's (faults send wrong ones).
    """
    return frame(
        Outgoing.POSITION_DATA,
        3,
        row.account,
        row.conid,
        row.symbol,
        row.sec_type,
        row.expiry,
        row.strike,
        row.right,
        row.multiplier,
        row.exchange,
        row.currency,
        row.local_symbol,
        row.trading_class,
        row.position if quantity is None else quantity,
        row.avg_cost if avg_cost is None else avg_cost,
    )


def position_end() -> bytes:
    return frame(Outgoing.POSITION_END, 1)


def account_value(tag: str, value: str, currency: str, account: str) -> bytes:
    return frame(Outgoing.ACCT_VALUE, 2, tag, value, currency, account)


def portfolio_value(row: PositionRow, market_price: float, market_value: float) -> bytes:
    """An updatePortfolio frame (version 8: 20 fields; no P&L is known, so zeros)."""
    return frame(
        Outgoing.PORTFOLIO_VALUE,
        8,
        row.conid,
        row.symbol,
        row.sec_type,
        row.expiry,
        row.strike,
        row.right,
        row.multiplier,
        "",  # primaryExchange: a portfolio file does not know it
        row.currency,
        row.local_symbol,
        row.trading_class,
        row.position,
        market_price,
        market_value,
        row.avg_cost,
        0.0,
        0.0,
        row.account,
    )


def account_update_time(now: datetime) -> bytes:
    return frame(Outgoing.ACCT_UPDATE_TIME, 1, now.strftime("%H:%M"))


def account_download_end(account: str) -> bytes:
    return frame(Outgoing.ACCT_DOWNLOAD_END, 1, account)


def account_update_multi(
    req_id: int, account: str, model_code: str, tag: str, value: str, currency: str
) -> bytes:
    return frame(
        Outgoing.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model_code, tag, value, currency
    )


def account_update_multi_end(req_id: int) -> bytes:
    return frame(Outgoing.ACCOUNT_UPDATE_MULTI_END, 1, req_id)


def execution_data_end(req_id: int) -> bytes:
    return frame(Outgoing.EXECUTION_DATA_END, 1, req_id)


def open_order_end() -> bytes:
    return frame(Outgoing.OPEN_ORDER_END, 1)


def completed_orders_end() -> bytes:
    # No version field: ib_async's decoder skips only the id, ibapi reads nothing.
    return frame(Outgoing.COMPLETED_ORDERS_END)
