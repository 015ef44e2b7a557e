"""The gateway: an asyncio server of TWS API sessions over one portfolio.

Holds what all connections share: the portfolio (replaced whole, with changes
pushed to open subscriptions), the faults in force, and the client ids in use.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from v6_pipeline.ib.gateway.answers import PositionsAnswer
from v6_pipeline.ib.gateway.faults import Fault, parse_faults, restart_seconds
from v6_pipeline.ib.gateway.portfolio import Portfolio, PortfolioPosition, load_portfolio
from v6_pipeline.ib.gateway.session import Session

log = logging.getLogger(__name__)

# Introspection keeps the latest records only, so a long-running gateway stays small.
_HISTORY = 10_000


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    client_id: int | None
    fields: tuple[str, ...]

    @property
    def msg_id(self) -> int:
        return int(self.fields[0])


@dataclass(frozen=True, slots=True)
class SnapshotServed:
    """One answer to reqPositions, with the server's cost of building it."""

    client_id: int | None
    positions: int
    payload_bytes: int
    build_seconds: float


class Gateway:
    """`async with Gateway(portfolio) as gw:` serves on `gw.host`:`gw.port`."""

    def __init__(
        self,
        portfolio: Portfolio,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Iterable[Fault | str] = (),
        source: str | Path | None = None,
        handshake_timeout: float = 10.0,
        max_clients: int = 32,
        max_handshakes: int = 64,
    ) -> None:
        self.host = host
        self.port = port
        self.source = Path(source) if source is not None else None
        self.handshake_timeout = handshake_timeout
        # Clients past startApi (IB takes 32). Connections still in their handshake are
        # bounded apart, so silent ones (scanners, health checks) never lock a client out.
        self.max_clients = max_clients
        self.max_handshakes = max_handshakes
        self._portfolio = portfolio
        self._faults = parse_faults(faults)
        self._server: asyncio.Server | None = None
        self._sessions: dict[Session, asyncio.Task[None]] = {}
        self._handshakes: dict[Session, None] = {}  # not past startApi yet, oldest first
        self._clients: dict[int, Session] = {}
        self._requests: deque[ReceivedRequest] = deque(maxlen=_HISTORY)
        self._snapshots: deque[SnapshotServed] = deque(maxlen=_HISTORY)
        self._restarting: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self._listen()
        log.info("gateway listening on %s:%d", self.host, self.port)
        if (seconds := restart_seconds(self._faults)) is not None:
            self._restart(seconds)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._restarting is not None:
            self._restarting.cancel()
        if self._server is None:
            return
        await self._hang_up()
        self._server = None
        log.info("gateway on %s:%d stopped", self.host, self.port)

    async def _hang_up(self) -> None:
        """Stop listening (new connections are refused) and drop every connection."""
        assert self._server is not None
        self._server.close()
        # Aborting the sockets ends each session's read; cancelling its task instead
        # would make asyncio log the cancellation as an error.
        tasks = list(self._sessions.values())
        for session in list(self._sessions):
            session.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _restart(self, seconds: float) -> None:
        """Go down for `seconds` and come back on the same port, as IB's nightly reset."""

        async def restart() -> None:
            log.info("fault: restarting; refusing connections for %g s", seconds)
            await self._hang_up()
            await asyncio.sleep(seconds)
            await self._listen()
            log.info("fault: restarted; listening on %s:%d again", self.host, self.port)

        self._restarting = asyncio.ensure_future(restart())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        if len(self._clients) >= self.max_clients:
            log.warning("refused %s: already %d API clients", session.peer, len(self._clients))
            session.close()
            return
        if len(self._handshakes) >= self.max_handshakes:
            # The newest connection is the likeliest to be a client about to speak.
            oldest = next(iter(self._handshakes))
            del self._handshakes[oldest]
            log.warning(
                "closing %s: the oldest of %d unfinished handshakes, to make room for %s",
                oldest.peer,
                self.max_handshakes,
                session.peer,
            )
            oldest.abort()
        task = asyncio.current_task()
        assert task is not None  # start_server runs each connection in a task
        self._sessions[session] = task
        self._handshakes[session] = None
        try:
            await session.run()
        except Exception:
            # a bug in one session must not take the others down
            log.exception("session %s failed", session.peer)
        finally:
            del self._sessions[session]
            self._handshakes.pop(session, None)
            if session.client_id is not None and self._clients.get(session.client_id) is session:
                del self._clients[session.client_id]

    # --- what tests and operators change ---------------------------------------------

    @property
    def portfolio(self) -> Portfolio:
        return self._portfolio

    @property
    def faults(self) -> tuple[Fault, ...]:
        return self._faults

    def set_faults(self, faults: Iterable[Fault | str]) -> None:
        """Faults for requests from now on (`[]` for a well-behaved gateway). Notice faults
        newly set are sent to the connected clients at once."""
        before = set(self._faults)
        self._faults = parse_faults(faults)
        log.info("faults: %s", ", ".join(map(str, self._faults)) or "none")
        added = tuple(f for f in self._faults if f not in before)
        for session in list(self._sessions):
            session.notify(added)
        if (seconds := restart_seconds(added)) is not None:
            self._restart(seconds)

    def set_portfolio(self, portfolio: Portfolio) -> tuple[PortfolioPosition, ...]:
        """Serve `portfolio` from now on; push the changed, new and closed positions to
        every open subscription, as IB does after a fill. Returns those changes."""
        changes = portfolio.changes_since(self._portfolio)
        self._portfolio = portfolio
        if changes:
            for session in list(self._sessions):
                session.push(changes)
        return changes

    def reload(self) -> tuple[PortfolioPosition, ...]:
        """Read the portfolio file again and serve it. Raises PortfolioError and keeps
        the current portfolio when the file is bad."""
        if self.source is None:
            raise RuntimeError("this gateway was not built from a file")
        return self.set_portfolio(load_portfolio(self.source))

    # --- introspection -------------------------------------------------------------

    @property
    def client_ids(self) -> frozenset[int]:
        """Client ids of the connections past startApi."""
        return frozenset(self._clients)

    @property
    def connections(self) -> int:
        return len(self._sessions)

    @property
    def requests(self) -> tuple[ReceivedRequest, ...]:
        """Requests received after startApi, oldest first (the latest 10,000)."""
        return tuple(self._requests)

    @property
    def snapshots(self) -> tuple[SnapshotServed, ...]:
        return tuple(self._snapshots)

    # --- for sessions ----------------------------------------------------------------

    def claim(self, session: Session) -> bool:
        """Take the session's client id; False when another connection holds it."""
        assert session.client_id is not None
        self._handshakes.pop(session, None)
        if session.client_id in self._clients:
            return False
        self._clients[session.client_id] = session
        return True

    def note_request(self, session: Session, fields: list[str]) -> None:
        self._requests.append(ReceivedRequest(session.client_id, tuple(fields)))

    def note_snapshot(self, session: Session, answer: PositionsAnswer, seconds: float) -> None:
        self._snapshots.append(
            SnapshotServed(session.client_id, answer.count, len(answer.payload), seconds)
        )
