"""One client connection: handshake, startApi, then requests until either side closes.

Whatever a client sends, the damage stays in its own connection: protocol
violations close it with a log line; a request the gateway does not serve gets
an error frame and the connection lives on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum, auto
from typing import Protocol

from v6_pipeline.ib import protocol
from v6_pipeline.ib.gateway import answers
from v6_pipeline.ib.gateway.faults import Fault, FaultName, active, delay_seconds
from v6_pipeline.ib.gateway.portfolio import Portfolio, PortfolioPosition
from v6_pipeline.ib.protocol import Incoming, ProtocolError

log = logging.getLogger(__name__)

# A client that stops reading while live updates pile up is cut off past this.
MAX_PENDING_WRITE = 64 * 1024 * 1024

Handler = Callable[["Session", list[str]], None]


class SubscriptionState(Enum):
    NONE = auto()
    PENDING = auto()  # asked for, answer not sent yet (a delay fault is running)
    LIVE = auto()  # snapshot sent; changes follow


class Host(Protocol):
    """What a session needs of the gateway serving it (the server implements it; the
    session does not import the server)."""

    handshake_timeout: float

    @property
    def portfolio(self) -> Portfolio: ...

    @property
    def faults(self) -> tuple[Fault, ...]: ...

    def claim(self, session: Session) -> bool: ...

    def note_request(self, session: Session, fields: list[str]) -> None: ...

    def note_snapshot(
        self, session: Session, answer: answers.PositionsAnswer, seconds: float
    ) -> None: ...


class Session:
    def __init__(
        self, gateway: Host, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._gateway = gateway
        self._reader = reader
        self._writer = writer
        self.peer = "{}:{}".format(*writer.get_extra_info("peername", ("?", 0))[:2])
        self.client_id: int | None = None
        self.server_version = 0
        self.positions = SubscriptionState.NONE
        self.account_updates: str | None = None  # the account subscribed to
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            async with asyncio.timeout(self._gateway.handshake_timeout):
                started = await self._open()
            if started:
                await self._serve()
        except TimeoutError:
            log.warning(
                "closing %s: no handshake and startApi within %gs",
                self.peer,
                self._gateway.handshake_timeout,
            )
        except ProtocolError as exc:
            log.warning("closing %s (client id %s): %s", self.peer, self.client_id, exc)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("client %s (client id %s) went away", self.peer, self.client_id)
        finally:
            for task in self._tasks:
                task.cancel()
            self.close()

    def close(self) -> None:
        """Close after sending what is buffered."""
        self._writer.close()

    def abort(self) -> None:
        """Close now, dropping what is buffered."""
        self._writer.transport.abort()

    # --- opening -----------------------------------------------------------------

    async def _open(self) -> bool:
        """Handshake and startApi; False when the client was turned away."""
        prefix = await self._reader.readexactly(len(protocol.API_PREFIX))
        if prefix != protocol.API_PREFIX:
            raise ProtocolError(f"not a TWS API client (opened with {prefix!r})")
        hello = protocol.parse_hello(await protocol.read_payload(self._reader))
        self.server_version = protocol.negotiate(hello)
        self._writer.write(protocol.server_hello(self.server_version, datetime.now(UTC)))

        fields = await protocol.read_fields(self._reader)
        if fields[0] != str(Incoming.START_API.value) or len(fields) < 3:
            raise ProtocolError(f"expected startApi, got {fields[:3]}")
        try:
            client_id = int(fields[2])
        except ValueError:
            raise ProtocolError(f"startApi with client id {fields[2]!r}") from None
        self.client_id = client_id
        gateway = self._gateway
        if active(gateway.faults, FaultName.CLIENT_ID_IN_USE) or not gateway.claim(self):
            self._writer.write(answers.client_id_in_use(self.server_version))
            log.warning("refused %s: client id %d in use", self.peer, client_id)
            self.client_id = None  # not ours to release
            return False
        self._writer.write(answers.start(gateway.portfolio, next_order_id=1))
        log.info(
            "client %s connected with client id %d at server version %d",
            self.peer,
            client_id,
            self.server_version,
        )
        return True

    # --- requests ----------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            fields = await protocol.read_fields(self._reader)
            try:
                msg_id = int(fields[0])
            except ValueError:
                raise ProtocolError(f"message id {fields[0][:20]!r} is not a number") from None
            self._gateway.note_request(self, fields)
            handler = _HANDLERS.get(msg_id, Session._unsupported)
            try:
                handler(self, fields)
            except (IndexError, ValueError):
                req_id = protocol.request_id(fields)
                self._writer.write(answers.malformed(self.server_version, req_id, msg_id))
            await self._writer.drain()

    def _positions(self, fields: list[str]) -> None:
        self.positions = SubscriptionState.PENDING
        delay = delay_seconds(self._gateway.faults)
        if delay:
            task = asyncio.create_task(self._send_positions_later(delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._send_positions(self._answer())

    def _answer(self) -> answers.PositionsAnswer:
        """The positions as they are now: a slow gateway reports its book when it sends."""
        started = time.perf_counter()
        answer = answers.positions(
            self._gateway.portfolio, self._gateway.faults, self.server_version
        )
        self._gateway.note_snapshot(self, answer, time.perf_counter() - started)
        return answer

    async def _send_positions_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.positions is SubscriptionState.PENDING:  # not cancelled meanwhile
            self._send_positions(self._answer())
            await self._writer.drain()

    def _send_positions(self, answer: answers.PositionsAnswer) -> None:
        self._writer.write(answer.payload)
        self.positions = SubscriptionState.LIVE if answer.subscribe else SubscriptionState.NONE
        if answer.close:
            log.info("fault: closing %s mid-positions", self.peer)
            self.close()

    def _cancel_positions(self, fields: list[str]) -> None:
        self.positions = SubscriptionState.NONE

    def _account_updates(self, fields: list[str]) -> None:
        subscribe, account = fields[2] not in ("0", "", "false"), fields[3]
        if not subscribe:
            self.account_updates = None
            return
        self.account_updates = account
        now = datetime.now(UTC)
        self._writer.write(answers.account_updates(self._gateway.portfolio, account, now))

    def _account_updates_multi(self, fields: list[str]) -> None:
        self._writer.write(answers.account_updates_multi(int(fields[2]), fields[3], fields[4]))

    def _executions(self, fields: list[str]) -> None:
        self._writer.write(protocol.execution_data_end(int(fields[2])))

    def _open_orders(self, fields: list[str]) -> None:
        self._writer.write(protocol.open_order_end())

    def _completed_orders(self, fields: list[str]) -> None:
        self._writer.write(protocol.completed_orders_end())

    def _current_time(self, fields: list[str]) -> None:
        self._writer.write(protocol.current_time(int(time.time())))

    def _managed_accounts(self, fields: list[str]) -> None:
        self._writer.write(protocol.managed_accounts(self._gateway.portfolio.accounts))

    def _ids(self, fields: list[str]) -> None:
        self._writer.write(protocol.next_valid_id(1))

    def _ignore(self, fields: list[str]) -> None:
        """Requests IB acknowledges with silence."""

    def _refuse_order(self, fields: list[str]) -> None:
        req_id = protocol.request_id(fields)
        self._writer.write(answers.read_only(self.server_version, req_id))

    def _unsupported(self, fields: list[str]) -> None:
        req_id = protocol.request_id(fields)
        self._writer.write(answers.unsupported(self.server_version, req_id, int(fields[0])))

    # --- live updates --------------------------------------------------------------

    def notify(self, faults: tuple[Fault, ...]) -> None:
        """Send the notices of `faults` (1100, 1101, 1102), as IB tells every API client."""
        payload = answers.notices(faults, self.server_version)
        if payload and self.client_id is not None and not self._writer.transport.is_closing():
            self._writer.write(payload)

    def push(self, changes: tuple[PortfolioPosition, ...]) -> None:
        """Send position changes to this client's open subscriptions, as IB does after a fill."""
        if self._writer.transport.is_closing():
            return
        if self.positions is SubscriptionState.LIVE:
            self._writer.write(answers.position_updates(changes, self._gateway.faults))
        if self.account_updates is not None:
            mine = [p for p in changes if p.account == self.account_updates]
            if mine:
                self._writer.write(answers.portfolio_values(mine))
        if self._writer.transport.get_write_buffer_size() > MAX_PENDING_WRITE:
            log.warning(
                "closing %s (client id %s): not reading its updates", self.peer, self.client_id
            )
            self.abort()


_HANDLERS: dict[int, Handler] = {
    Incoming.REQ_POSITIONS: Session._positions,
    Incoming.CANCEL_POSITIONS: Session._cancel_positions,
    Incoming.REQ_ACCOUNT_UPDATES: Session._account_updates,
    Incoming.REQ_ACCOUNT_UPDATES_MULTI: Session._account_updates_multi,
    Incoming.CANCEL_ACCOUNT_UPDATES_MULTI: Session._ignore,
    Incoming.REQ_EXECUTIONS: Session._executions,
    Incoming.REQ_OPEN_ORDERS: Session._open_orders,
    Incoming.REQ_ALL_OPEN_ORDERS: Session._open_orders,
    Incoming.REQ_AUTO_OPEN_ORDERS: Session._ignore,
    Incoming.REQ_COMPLETED_ORDERS: Session._completed_orders,
    Incoming.REQ_CURRENT_TIME: Session._current_time,
    Incoming.REQ_MANAGED_ACCTS: Session._managed_accounts,
    Incoming.REQ_IDS: Session._ids,
    Incoming.REQ_MARKET_DATA_TYPE: Session._ignore,
    Incoming.PLACE_ORDER: Session._refuse_order,
    Incoming.CANCEL_ORDER: Session._refuse_order,
    Incoming.REQ_GLOBAL_CANCEL: Session._refuse_order,
    Incoming.EXERCISE_OPTIONS: Session._refuse_order,
}
