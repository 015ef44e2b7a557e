"""The gateway in a background thread with its own event loop, for synchronous callers
(sync tests, Dagster tests, `v6 demo`). Every method is safe to call from any thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from v6_pipeline.ib.gateway.faults import Fault
from v6_pipeline.ib.gateway.portfolio import Portfolio, PortfolioPosition
from v6_pipeline.ib.gateway.server import Gateway, ReceivedRequest, SnapshotServed

T = TypeVar("T")

_START_TIMEOUT_S = 10.0


class GatewayThread:
    """`with GatewayThread(portfolio) as gw:` serves on `gw.host`:`gw.port` until exit."""

    def __init__(self, portfolio: Portfolio, **options: Any) -> None:
        """`options` are `Gateway`'s (host, port, faults, source, ...)."""
        self._gateway = Gateway(portfolio, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="v6-gateway", daemon=True)

    @property
    def host(self) -> str:
        return self._gateway.host

    @property
    def port(self) -> int:
        return self._gateway.port

    def start(self) -> Self:
        """Start serving; returns once the port is bound (raises if it cannot be)."""
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise TimeoutError("the gateway thread did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self) -> None:
        """Close every connection and end the thread. Idempotent."""
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._gateway.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._gateway.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the gateway's loop, where all its state lives."""
        if self._loop is None or not self._thread.is_alive():
            raise RuntimeError("the gateway thread is not running")

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    # --- the Gateway's API, from any thread -----------------------------------------

    def set_portfolio(self, portfolio: Portfolio) -> tuple[PortfolioPosition, ...]:
        return self._call(lambda: self._gateway.set_portfolio(portfolio))

    def set_faults(self, faults: Iterable[Fault | str]) -> None:
        faults = tuple(faults)
        self._call(lambda: self._gateway.set_faults(faults))

    def reload(self) -> tuple[PortfolioPosition, ...]:
        return self._call(self._gateway.reload)

    @property
    def portfolio(self) -> Portfolio:
        return self._call(lambda: self._gateway.portfolio)

    @property
    def client_ids(self) -> frozenset[int]:
        return self._call(lambda: self._gateway.client_ids)

    @property
    def connections(self) -> int:
        return self._call(lambda: self._gateway.connections)

    @property
    def requests(self) -> tuple[ReceivedRequest, ...]:
        return self._call(lambda: self._gateway.requests)

    @property
    def snapshots(self) -> tuple[SnapshotServed, ...]:
        return self._call(lambda: self._gateway.snapshots)
