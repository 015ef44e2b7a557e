"""The stream's long-lived connection: IB's position messages, and why it ended.

`reqPositions` is answered with every position and `positionEnd`, then the same
subscription keeps pushing a `position` message for every change (ib_async 2.1.0 emits
`positionEvent` for both, `wrapper.position`; it has no reconnection of its own). A
subscription ends on the first of: the gateway closing the connection, a connectivity
notice (1100 lost; 1101/1102 restored, after which IB says data may have been lost), a
position frame ib_async could not decode (its decoder logs the fields and drops the
frame: a change may be lost) or the stream asking (a refused message). The stream then
starts over with a snapshot.

Connected with the bare API handshake and one request (no order, execution or account
downloads): the connection is read-only in what it asks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from ib_async import IB, Position

from v6_pipeline.ib.decoder_log import DroppedPositionFrames
from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.snapshot import position_row
from v6_pipeline.stream.updates import PositionUpdate, update

log = logging.getLogger(__name__)

T = TypeVar("T")

# How ib_async's decoder logs a frame it dropped; position frames start with their id.
_RESTORED = (
    ErrorCode.CONNECTIVITY_RESTORED_DATA_LOST,
    ErrorCode.CONNECTIVITY_RESTORED_DATA_MAINTAINED,
)


@dataclass(frozen=True, slots=True)
class Ended:
    """Why a subscription ended, and whether to take a fresh snapshot at once (else the
    stream backs off first: the gateway is likely still unwell)."""

    reason: str
    at_once: bool
    code: int | None = None  # the gateway's error code that ended it, if one did


class SubscribeError(Exception):
    """The subscription could not be opened (or ended before its first `positionEnd`)."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class Subscription:
    """One connection following position messages; `ended` resolves when it stops."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        on_message: Callable[[PositionUpdate], None],
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.accounts: tuple[str, ...] = ()
        self._on_message = on_message
        self._ib = IB()
        self._dropped = DroppedPositionFrames(self._on_dropped)
        self.ended: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()

    async def open(self, timeout_s: float) -> None:
        """Connect and receive the first complete list (positionEnd) within `timeout_s`;
        its messages go to `on_message` like every later one."""
        ib = self._ib
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.positionEvent += self._on_position
        self._dropped.attach()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        where = f"{self.host}:{self.port}"
        try:
            await self._unless_ended(
                ib.client.connectAsync(self.host, self.port, self.client_id, timeout=None),
                timeout_s,
            )
        except TimeoutError:
            raise SubscribeError(f"no API handshake from {where} within {timeout_s:g} s") from None
        except OSError as exc:
            raise SubscribeError(f"cannot connect to {where}: {exc}") from None
        self.accounts = tuple(ib.client.getAccounts())
        try:
            await self._unless_ended(ib.reqPositionsAsync(), deadline - loop.time())
        except TimeoutError:
            raise SubscribeError(f"no positionEnd from {where} within {timeout_s:g} s") from None
        except ConnectionError as exc:
            raise SubscribeError(f"{where} closed the connection: {exc}") from None

    def end(self, ended: Ended) -> None:
        """Stop following; the first reason given is the one kept."""
        if not self.ended.done():
            self.ended.set_result(ended)

    def close(self) -> None:
        self._dropped.detach()
        ib = self._ib
        ib.disconnectedEvent -= self._on_disconnected
        ib.positionEvent -= self._on_position
        if ib.client.isReady():
            ib.disconnect()
        else:  # IB.disconnect() needs a ready connection for its statistics
            ib.client.disconnect()

    # --- ib_async's events -----------------------------------------------------------

    def _on_position(self, position: Position) -> None:
        if self.ended.done():
            return  # whatever follows an end is for the next snapshot to judge
        self._on_message(update(**position_row(position), timestamp=datetime.now(UTC)))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code == ErrorCode.CONNECTIVITY_LOST:
            lost = f"the gateway lost its connection to IB (error {code}: {message})"
            self.end(Ended(lost, at_once=False))
        elif code in _RESTORED:
            self.end(
                Ended(
                    f"the gateway's connection to IB was restored (error {code}: {message}); "
                    "positions may have changed meanwhile",
                    True,
                )
            )
        elif code == ErrorCode.CLIENT_ID_IN_USE:
            self.end(
                Ended(
                    f"client id {self.client_id} is in use by another API connection (error "
                    f"{code}); if this lasts, set V6_STREAM_CLIENT_ID to an id no one uses",
                    False,
                    code,
                )
            )

    def _on_disconnected(self) -> None:
        self.end(Ended(f"the gateway at {self.host}:{self.port} closed the connection", False))

    def _on_dropped(self, fields: str) -> None:
        self.end(
            Ended(
                f"ib_async could not decode a position message and dropped it (raw fields: "
                f"{fields}); nothing was written from it",
                True,
            )
        )

    async def _unless_ended(self, work: Awaitable[T], timeout: float) -> T:
        """`work`'s result; SubscribeError if the subscription ends first."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait(
            {task, self.ended}, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            return task.result()
        task.cancel()
        if self.ended.done():
            ended = self.ended.result()
            raise SubscribeError(ended.reason, ended.code)
        raise TimeoutError
