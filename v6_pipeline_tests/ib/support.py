"""Shared by the gateway tests: a sample portfolio, row views for comparing what a
client received with the portfolio, a raw-socket client speaking through
`protocol`, and a polling wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ib_async import IB

from v6_pipeline.ib import protocol
from v6_pipeline.ib.gateway import Portfolio, PortfolioPosition

# --- messages a client sends (the emulator's protocol.py encodes the gateway's side) ---


def client_hello(min_version: int, max_version: int, options: str = "") -> bytes:
    """The bytes a client opens with (`API\\0` + `vMIN..MAX[ OPTIONS]`)."""
    version = f"v{min_version}..{max_version}" + (f" {options}" if options else "")
    return protocol.API_PREFIX + protocol.prefix(version.encode("ascii"))


def start_api(client_id: int, optional_capabilities: str = "") -> bytes:
    return protocol.frame(protocol.Incoming.START_API, 2, client_id, optional_capabilities)


# `await connect(client_id=None, *, readonly=True, timeout=5.0)` (the conftest fixture)
Connect = Callable[..., Awaitable[IB]]

SAMPLE = Portfolio.of(
    [
        PortfolioPosition(
            "DU111",
            500123,
            "SPY",
            "OPT",
            -3,
            expiry="20270115",
            strike=600.0,
            right="C",
            multiplier="100",
            exchange="SMART",
            currency="USD",
            local_symbol="SPY   270115C00600000",
            trading_class="SPY",
            avg_cost=1234.5,
        ),
        # fractional shares
        PortfolioPosition(
            "DU111",
            756733,
            "SPY",
            "STK",
            12.5,
            exchange="SMART",
            currency="USD",
            local_symbol="SPY",
            trading_class="SPY",
            avg_cost=580.25,
        ),
        # closed earlier today
        PortfolioPosition(
            "DU111",
            600001,
            "QQQ",
            "OPT",
            0,
            expiry="20261218",
            strike=500.0,
            right="P",
            multiplier="100",
            exchange="SMART",
            currency="USD",
            local_symbol="QQQ   261218P00500000",
            trading_class="QQQ",
        ),
        PortfolioPosition(
            "DU222",
            500124,
            "SPY",
            "OPT",
            7,
            expiry="20270115",
            strike=550.0,
            right="P",
            multiplier="100",
            exchange="SMART",
            currency="USD",
            local_symbol="SPY   270115P00550000",
            trading_class="SPY",
            avg_cost=845.0,
        ),
        PortfolioPosition(
            "DU222",
            495512,
            "ES",
            "FUT",
            -1,
            expiry="20261218",
            multiplier="50",
            exchange="CME",
            currency="USD",
            local_symbol="ESZ6",
            trading_class="ES",
            avg_cost=301234.5,
        ),
    ]
)

Row = tuple[str, int, str, str, str, float, str, str, str, str, str, str, float, float]


def row_of(p: PortfolioPosition) -> Row:
    return (
        p.account,
        p.conid,
        p.symbol,
        p.sec_type,
        p.expiry,
        p.strike,
        p.right,
        p.multiplier,
        p.exchange,
        p.currency,
        p.local_symbol,
        p.trading_class,
        p.position,
        p.avg_cost,
    )


def client_row(account: str, contract: Any, position: float, avg_cost: float) -> Row:
    """A position as a client (ib_async or ibapi) delivered it, field by field."""
    return (
        account,
        contract.conId,
        contract.symbol,
        contract.secType,
        contract.lastTradeDateOrContractMonth,
        contract.strike,
        contract.right,
        contract.multiplier,
        contract.exchange,
        contract.currency,
        contract.localSymbol,
        contract.tradingClass,
        position,
        avg_cost,
    )


def ib_rows(positions: Iterable[Any]) -> list[Row]:
    """ib_async `Position` objects as sorted rows."""
    return sorted(client_row(p.account, p.contract, p.position, p.avgCost) for p in positions)


def rows(portfolio: Portfolio) -> list[Row]:
    return sorted(row_of(p) for p in portfolio.positions)


def fields(*values: object) -> list[str]:
    """The fields of a frame carrying `values`, as `RawClient.read` returns them."""
    return [protocol.text(v) for v in values]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `predicate()` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@dataclass
class RawClient:
    """A TWS API client built from `protocol` alone, to send what real clients won't."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server_version: int = 0

    @classmethod
    async def open(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def start(
        self, client_id: int, low: int = 157, high: int = 178
    ) -> tuple[list[str], list[str]]:
        """Handshake and startApi; returns the (managedAccounts, nextValidId) frames."""
        self.writer.write(client_hello(low, high))
        version, _ = await self.read()
        self.server_version = int(version)
        self.writer.write(start_api(client_id))
        return await self.read(), await self.read()

    def send(self, *fields: object) -> None:
        self.writer.write(protocol.frame(*fields))

    async def read(self) -> list[str]:
        async with asyncio.timeout(5):
            return await protocol.read_fields(self.reader)

    async def closed_by_server(self) -> bool:
        """True when the server closes the connection (EOF or reset) within 5 s."""
        try:
            async with asyncio.timeout(5):
                while await self.reader.read(65536):
                    pass
        except ConnectionError:
            pass
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()
