"""What the gateway answers, as bytes: pure functions of the portfolio and the faults.

The session does the I/O; here is what goes on the wire, including how each
positions fault bends the answer to reqPositions and the updates pushed after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from v6_pipeline.ib import protocol
from v6_pipeline.ib.connectivity import CONNECTIVITY
from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway.faults import Fault, FaultName, active
from v6_pipeline.ib.gateway.portfolio import Portfolio, PortfolioPosition

# IB's own texts for the errors the emulator sends.
_CLIENT_ID_IN_USE = (
    "Unable to connect as the client id is already in use. Retry with a unique client id."
)
_READ_ONLY = (
    "Error validating request.-'bW' : cause - The API interface is currently in Read-Only mode."
)

# The connectivity notice each notice fault sends to every connected client.
_NOTICES: dict[FaultName, ErrorCode] = {
    FaultName.NOTICE_CONNECTIVITY_LOST: ErrorCode.CONNECTIVITY_LOST,
    FaultName.NOTICE_RESTORED_DATA_LOST: ErrorCode.CONNECTIVITY_RESTORED_DATA_LOST,
    FaultName.NOTICE_RESTORED_DATA_KEPT: ErrorCode.CONNECTIVITY_RESTORED_DATA_MAINTAINED,
}
# The account the unknown-account fault reports a position in (no gateway manages it).
UNKNOWN_ACCOUNT = "DU0UNKNOWN"

# The conid of the huge-conid faults: an integer every client parses, beyond int64.
HUGE_CONID = 2**64
# The contract huge-conid-push reports under it: one no client's book knows yet.
HUGE_SYMBOL = "BIGID"

# A quantity no client can parse as a number (not "nan": Python's float() takes it).
MALFORMED_QUANTITY = "--"
# Numbers both clients parse (Python's and Java's spelling differ; ib_async is Python).
NAN = "nan"
INF = "inf"


@dataclass(frozen=True, slots=True)
class PositionsAnswer:
    """How reqPositions is answered under the faults in force."""

    payload: bytes
    """the frames to send"""
    subscribe: bool
    """whether live updates follow"""
    close: bool
    """whether the connection is closed after the payload"""
    count: int
    """position frames in the payload"""


def positions(
    portfolio: Portfolio, faults: Sequence[Fault], server_version: int
) -> PositionsAnswer:
    if active(faults, FaultName.CONNECTIVITY_LOST):
        payload = _connectivity(server_version, ErrorCode.CONNECTIVITY_LOST)
        return PositionsAnswer(payload, subscribe=False, close=False, count=0)

    rows = portfolio.positions
    frames = _position_frames(rows, faults)
    if active(faults, FaultName.DUPLICATE_POSITIONS):
        wrong = (protocol.position(row, quantity=row.position + 1) for row in rows)
        frames = [f for pair in zip(wrong, frames, strict=True) for f in pair]

    if active(faults, FaultName.DROP_MID_POSITIONS):
        half = frames[: len(frames) // 2]
        return PositionsAnswer(b"".join(half), subscribe=False, close=True, count=len(half))
    for fault in faults:
        if fault.name is FaultName.ERROR_MID_POSITIONS:
            frames.insert(len(frames) // 2, _connectivity(server_version, fault.code))
    if not active(faults, FaultName.NO_POSITION_END):
        frames.append(protocol.position_end())
    return PositionsAnswer(b"".join(frames), subscribe=True, close=False, count=len(rows))


def _position_frames(rows: Sequence[PortfolioPosition], faults: Sequence[Fault]) -> list[bytes]:
    """One frame per row, with the quantities and average costs the faults bend."""
    # row index -> the text sent instead of the row's quantity / average cost
    quantities: dict[int, str] = {}
    avg_costs: dict[int, str] = {}
    huge = {0} if rows and active(faults, FaultName.HUGE_CONID) else set()
    if active(faults, FaultName.NONFINITE_POSITION):
        quantities[len(rows) - 1] = INF
        quantities[0] = NAN
    if active(faults, FaultName.MALFORMED_POSITION):
        quantities[0] = MALFORMED_QUANTITY
    if active(faults, FaultName.NONFINITE_AVG_COST):
        avg_costs[0] = NAN
    return [
        protocol.position(
            replace(row, conid=HUGE_CONID) if index in huge else row,
            quantities.get(index),
            avg_costs.get(index),
        )
        for index, row in enumerate(rows)
    ]


def client_id_in_use(server_version: int) -> bytes:
    """The refusal of startApi (the session closes after it)."""
    return protocol.error(
        server_version, protocol.NO_REQUEST_ID, ErrorCode.CLIENT_ID_IN_USE, _CLIENT_ID_IN_USE
    )


def read_only(server_version: int, req_id: int) -> bytes:
    """The refusal of an order request: the emulator, like a read-only API, trades nothing."""
    return protocol.error(server_version, req_id, ErrorCode.SERVER_ERROR_VALIDATING, _READ_ONLY)


def unsupported(server_version: int, req_id: int, msg_id: int) -> bytes:
    # IB serves every request; the emulator serves positions and account data. 322 ends
    # the request in ib_async (a warning code would leave it waiting).
    return protocol.error(
        server_version,
        req_id,
        ErrorCode.SERVER_ERROR_PROCESSING,
        f"Error processing request.-'{msg_id}' : cause - not served by the v6 gateway "
        "emulator, which serves positions and account data only",
    )


def malformed(server_version: int, req_id: int, msg_id: int) -> bytes:
    return protocol.error(
        server_version,
        req_id,
        ErrorCode.SERVER_ERROR_READING,
        f"Error reading request.-'{msg_id}' : cause - malformed fields",
    )


def position_updates(changes: Sequence[PortfolioPosition], faults: Sequence[Fault]) -> bytes:
    """What a subscribed client is pushed after a change, under the faults in force."""
    frames = _position_frames(changes, faults)
    if active(faults, FaultName.REPEAT_UPDATES):
        frames = [f for f in frames for _ in range(2)]
    if changes and active(faults, FaultName.UNKNOWN_ACCOUNT):
        frames.append(protocol.position(replace(changes[0], account=UNKNOWN_ACCOUNT)))
    if changes and active(faults, FaultName.HUGE_CONID_PUSH):
        frames.append(protocol.position(huge_conid_position(changes[0].account)))
    return b"".join(frames)


def huge_conid_position(account: str) -> PortfolioPosition:
    """The position huge-conid-push adds to every push: a stock no portfolio can hold."""
    return PortfolioPosition(
        account=account,
        conid=HUGE_CONID,
        symbol=HUGE_SYMBOL,
        sec_type="STK",
        position=1.0,
        exchange="SMART",
        currency="USD",
        local_symbol=HUGE_SYMBOL,
        avg_cost=1.0,
    )


def notices(faults: Sequence[Fault], server_version: int) -> bytes:
    """The unsolicited error frames the notice faults among `faults` send."""
    return b"".join(
        _connectivity(server_version, _NOTICES[f.name]) for f in faults if f.name in _NOTICES
    )


def _connectivity(server_version: int, code: int) -> bytes:
    """Connectivity code `code` as IB sends it: to no request, with IB's text."""
    return protocol.error(server_version, protocol.NO_REQUEST_ID, code, CONNECTIVITY[code].text)


def start(portfolio: Portfolio, next_order_id: int) -> bytes:
    """The answer to startApi: the API is ready for ib_async once both are in."""
    return protocol.managed_accounts(portfolio.accounts) + protocol.next_valid_id(next_order_id)


def portfolio_values(rows: Sequence[PortfolioPosition]) -> bytes:
    """updatePortfolio frames, marked at cost (no market data here: P&L is zero)."""
    out = []
    for row in rows:
        price = row.avg_cost / _multiplier(row)
        out.append(protocol.portfolio_value(row, price, row.position * row.avg_cost))
    return b"".join(out)


def account_updates(portfolio: Portfolio, account: str, now: datetime) -> bytes:
    """reqAccountUpdates: account values, the account's portfolio, then the end."""
    return b"".join(
        (
            *(protocol.account_value(tag, value, "", account) for tag, value in _values(account)),
            portfolio_values(portfolio.in_account(account)),
            protocol.account_update_time(now),
            protocol.account_download_end(account),
        )
    )


def account_updates_multi(req_id: int, account: str, model_code: str) -> bytes:
    return b"".join(
        (
            *(
                protocol.account_update_multi(req_id, account, model_code, tag, value, "")
                for tag, value in _values(account)
            ),
            protocol.account_update_multi_end(req_id),
        )
    )


def _values(account: str) -> tuple[tuple[str, str], ...]:
    return (("AccountCode", account), ("AccountReady", "true"))


def _multiplier(row: PortfolioPosition) -> float:
    try:
        value = float(row.multiplier)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0
