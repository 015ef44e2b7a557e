"""A complete, read-only IB position snapshot, or an exception that says why not.

Complete means: `positionEnd` arrived, on a connection that stayed up, with no
position frame lost to ib_async's decoder (it logs and skips a frame it cannot
parse, which would otherwise look like a smaller book), no "connectivity lost"
(1100) from the gateway meanwhile, every quantity a finite number (ib_async
takes "nan" and "inf" without a word) and every conid within int64 (ib_async takes
any integer; the tables store int64). Anything less raises an `IBSnapshotError`:
an empty or partial answer is never taken for "IB holds nothing".

The connection is opened with the bare API handshake (`Client.connectAsync`) rather
than `IB.connectAsync`, which would also download orders, executions and account
values and only log a timed-out positions request. One snapshot is in flight per
process: ib_async orphans the first of two concurrent position requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import polars as pl
from ib_async import IB, Contract, Position

from v6_pipeline.ib.connectivity import CONNECTIVITY
from v6_pipeline.ib.decoder_log import DroppedPositionFrames
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
from v6_pipeline.lake.schemas import IB_POSITION_SNAPSHOTS, polars_schema
from v6_pipeline.settings import IB_CLIENT_ID, IB_TIMEOUT_S

log = logging.getLogger(__name__)

# The snapshot's columns: the stored table's, less what the pipeline adds per window.
TIMEOUT_S = IB_TIMEOUT_S.value()  # for the whole snapshot, retries included
BACKOFF_S = 0.5  # the first pause before a retry

POSITIONS_SCHEMA: pl.Schema = polars_schema(
    IB_POSITION_SNAPSHOTS, drop=("window_start", "taken_at")
)

_ONE_AT_A_TIME = threading.Lock()
# A handshake may take this share of what is left of the budget, so that a silent port
# leaves time to try again; retries pause at most _MAX_PAUSE_S, so a gateway back from a
# restart is found within seconds.
_HANDSHAKE_SHARES = 3
_MAX_PAUSE_S = 2.0
# How ib_async reports a failed connectAsync, which also raises the typed cause.
_CONNECT_FAILED = "API connection failed: "
# What the tables' int64 `conid` column can hold.
_CONID_MIN, _CONID_MAX = -(2**63), 2**63 - 1

T = TypeVar("T")


@dataclass(frozen=True)
class IBSnapshot:
    """Every position of every managed account, as IB reported them at `taken_at`."""

    positions: pl.DataFrame  # POSITIONS_SCHEMA, one row per (account, conid)
    taken_at: datetime  # when positionEnd arrived (UTC)
    accounts: tuple[str, ...]  # managed accounts the gateway announced
    duration_s: float  # from the first connection attempt to positionEnd
    attempts: int
    server_version: int


def take_snapshot(
    host: str,
    port: int,
    client_id: int,
    *,
    timeout_s: float = TIMEOUT_S,
    max_attempts: int | None = None,
    backoff_s: float = BACKOFF_S,
    client_id_setting: str = IB_CLIENT_ID.variable,
) -> IBSnapshot:
    """Blocking form of `take_snapshot_async`, safe to call from any thread."""
    with _ONE_AT_A_TIME:
        return _run(
            take_snapshot_async(
                host,
                port,
                client_id,
                timeout_s=timeout_s,
                max_attempts=max_attempts,
                backoff_s=backoff_s,
                client_id_setting=client_id_setting,
            )
        )


async def take_snapshot_async(
    host: str,
    port: int,
    client_id: int,
    *,
    timeout_s: float = TIMEOUT_S,
    max_attempts: int | None = None,
    backoff_s: float = BACKOFF_S,
    client_id_setting: str = IB_CLIENT_ID.variable,
) -> IBSnapshot:
    """Take one complete snapshot within `timeout_s`, retrying transient failures.

    All attempts together stay within `timeout_s` (and number at most `max_attempts`
    when given): a gateway restarting for less than the timeout is waited out, one
    down for longer raises the last error. `client_id_setting` is the variable an error
    about the client id names (`v6 stream` has its own).
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    _check_address(host, port)
    started = time.monotonic()
    deadline = started + timeout_s
    attempt = 0
    while True:
        attempt += 1
        # A gateway that takes the connection and then says nothing would spend the whole
        # budget on one handshake: each handshake gets a share of what is left, so there
        # is time to try again. The positions download may use all that is left.
        shares = _HANDSHAKE_SHARES if max_attempts is None else max_attempts - attempt + 1
        handshake_s = (deadline - time.monotonic()) / shares
        try:
            positions, accounts, server_version = await _attempt(
                host, port, client_id, deadline, handshake_s, timeout_s, client_id_setting
            )
        except IBSnapshotError as exc:
            pause = min(backoff_s * 2 ** (attempt - 1), _MAX_PAUSE_S)
            remaining = deadline - time.monotonic()
            last = max_attempts is not None and attempt >= max_attempts
            if not exc.transient or last or remaining <= pause + 0.1:
                log.error("IB snapshot failed after %d attempt(s): %s", attempt, exc)
                raise
            log.warning(
                "IB snapshot attempt %d failed (%s); retrying in %.1f s", attempt, exc, pause
            )
            await asyncio.sleep(pause)
            continue
        taken_at = datetime.now(UTC)
        duration = time.monotonic() - started
        log.info(
            "IB snapshot complete: %d position(s) in %d account(s) in %.2f s (attempt %d)",
            positions.height,
            len(accounts),
            duration,
            attempt,
        )
        return IBSnapshot(positions, taken_at, accounts, duration, attempt, server_version)


def _check_address(host: str, port: int) -> None:
    """Refuse, before connecting, an address no gateway can have."""
    if not host.strip():
        raise GatewayAddressError.empty_host()
    if not 1 <= port <= 65535:
        raise GatewayAddressError.bad_port(port)


async def _attempt(
    host: str,
    port: int,
    client_id: int,
    deadline: float,
    handshake_s: float,
    timeout_s: float,
    client_id_setting: str,
) -> tuple[pl.DataFrame, tuple[str, ...], int]:
    ib = IB()
    loop = asyncio.get_running_loop()
    # The first reason this attempt cannot succeed, set from ib_async's events.
    failure: asyncio.Future[IBSnapshotError] = loop.create_future()
    received = 0
    stage = "the API handshake"

    def fail(error: IBSnapshotError) -> None:
        if not failure.done():
            failure.set_result(error)

    def on_error(req_id: int, code: int, message: str, contract: Any) -> None:
        if code == ErrorCode.CLIENT_ID_IN_USE:
            fail(ClientIdInUseError(client_id, host, port, client_id_setting))
        elif (known := CONNECTIVITY.get(code)) is None:
            return
        elif known.fails:
            fail(ConnectivityLostError(code, message, known.why))
        else:
            log.warning("IB notice %d during the snapshot (%s): %s", code, message, known.why)

    def on_api_error(message: str) -> None:
        if not message.startswith(_CONNECT_FAILED):  # raised to us, with its type
            fail(GatewayDisconnectedError(host, port, stage, received, message.rstrip(".")))

    def on_disconnected() -> None:
        fail(GatewayDisconnectedError(host, port, stage, received))

    def on_position(position: Position) -> None:
        nonlocal received
        received += 1

    dropped: list[str] = []  # raw fields of position frames the decoder skipped
    decoder_errors = DroppedPositionFrames(dropped.append)
    ib.errorEvent += on_error
    ib.client.apiError += on_api_error
    ib.disconnectedEvent += on_disconnected
    ib.positionEvent += on_position
    decoder_errors.attach()
    try:
        try:
            await _first(
                ib.client.connectAsync(host, port, client_id, timeout=None), failure, handshake_s
            )
        except TimeoutError as exc:  # before OSError, which it is one of
            # ib_async sends its hello once TCP is up: a message sent means the port took it.
            if ib.client.conn.numMsgSent:
                raise HandshakeTimeoutError(host, port, handshake_s) from exc
            why = f"no answer to the TCP connection within {handshake_s:.3g} s"
            raise GatewayUnreachableError(host, port, why) from exc
        except socket.gaierror as exc:
            raise GatewayAddressError.unresolvable(host, exc) from exc
        except OSError as exc:
            raise GatewayUnreachableError(host, port, exc) from exc
        stage = "the positions download"
        accounts = tuple(ib.client.getAccounts())
        server_version = ib.client.serverVersion()
        try:
            rows = await _first(ib.reqPositionsAsync(), failure, deadline - time.monotonic())
        except ConnectionError as exc:
            raise GatewayDisconnectedError(host, port, stage, received, str(exc)) from exc
        except TimeoutError as exc:
            raise SnapshotTimeoutError(timeout_s, received, stage) from exc
        # positionEnd may share a TCP read with a disconnect or an error: look again.
        if failure.done():
            raise failure.result()
        if not ib.client.isReady():
            raise GatewayDisconnectedError(host, port, stage, received)
        if dropped:
            raise MalformedPositionError(len(dropped), dropped[0][:200])
        return checked_positions(_frame(rows)), accounts, server_version
    finally:
        decoder_errors.detach()
        ib.disconnectedEvent -= on_disconnected
        if ib.client.isReady():
            ib.disconnect()
        else:  # IB.disconnect() needs a ready connection for its statistics
            ib.client.disconnect()


async def _first(
    work: Coroutine[Any, Any, T] | asyncio.Future[T],
    failure: asyncio.Future[IBSnapshotError],
    timeout: float,
) -> T:
    """`work`'s result, unless `failure` is set first (raised) or `timeout` passes."""
    task = asyncio.ensure_future(work)
    if timeout <= 0:
        task.cancel()
        raise TimeoutError
    done, _ = await asyncio.wait(
        {task, failure}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if failure in done:
        task.cancel()
        raise failure.result()
    if task in done:
        return task.result()
    task.cancel()
    raise TimeoutError


def position_row(position: Position) -> dict[str, Any]:
    """IB's position message as a row: the columns of `POSITIONS_SCHEMA` (a snapshot's)
    and of a `position_updates` row without its `timestamp` (the stream's)."""
    contract = position.contract
    return {
        "account": position.account,
        "conid": contract.conId,
        "symbol": contract.symbol,
        "sec_type": contract.secType,
        "right": contract.right,
        "strike": contract.strike,
        "expiry": contract.lastTradeDateOrContractMonth,
        "multiplier": contract.multiplier,
        "currency": contract.currency,
        "position": position.position,
        "avg_cost": position.avgCost,
    }


def _frame(rows: list[Position]) -> pl.DataFrame:
    """Positions as a frame, one row per (account, conid): a key repeated within one
    answer keeps its last value, as IB's later message supersedes the earlier."""
    _check_contracts(rows)
    mapped = [position_row(p) for p in rows]
    frame = pl.DataFrame(
        {name: [row[name] for row in mapped] for name in POSITIONS_SCHEMA.names()},
        schema=POSITIONS_SCHEMA,
    )
    return frame.unique(["account", "conid"], keep="last", maintain_order=True)


def _check_contracts(rows: list[Position]) -> None:
    """Refuse, with a sentence naming one, contracts no table could store: ib_async parses
    a conid of any size, and a frame of int64 would fail with a bare TypeError."""
    bad = [
        p
        for p in rows
        if not isinstance(p.contract.conId, int) or not _CONID_MIN <= p.contract.conId <= _CONID_MAX
    ]
    if bad:
        first = bad[0]
        raise MalformedContractError(
            len(bad),
            first.account,
            _describe(first.contract),
            "conid",
            first.contract.conId,
            "beyond the 64-bit range of a contract id (IB's are 32-bit)",
        )


def _describe(contract: Contract) -> str:
    """A contract as a person finds it in TWS: symbol, expiry, strike, right, sec type."""
    strike = f"{contract.strike:g}" if contract.strike else ""
    parts = (contract.symbol, contract.lastTradeDateOrContractMonth, strike, contract.right)
    named = " ".join(str(p) for p in parts if p) or "a contract without a symbol"
    return f"{named} ({contract.secType or 'no sec type'})"


def checked_positions(positions: pl.DataFrame) -> pl.DataFrame:
    """`positions` as they may be stored and judged.

    A quantity that is not a finite number (NaN, inf) cannot be judged, and stored it
    would poison every later comparison: the whole snapshot is refused. `avg_cost` is
    informational (nothing is judged by it): one that is not finite becomes unknown (null).
    """
    bad = positions.filter(~pl.col("position").is_finite())
    if bad.height:
        first = bad.row(0, named=True)
        raise NonFinitePositionError(
            bad.height, first["account"], first["conid"], first["position"]
        )
    avg_cost = pl.col("avg_cost")
    unknown = positions.filter(~avg_cost.is_finite())
    if unknown.height:
        first = unknown.row(0, named=True)
        log.warning(
            "IB sent %d position(s) whose average cost is not a finite number (e.g. account %s, "
            "conid %s: %s); stored as unknown",
            unknown.height,
            first["account"],
            first["conid"],
            first["avg_cost"],
        )
    return positions.with_columns(pl.when(avg_cost.is_finite()).then(avg_cost).alias("avg_cost"))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even under a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
