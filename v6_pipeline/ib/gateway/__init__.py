"""The IB Gateway emulator: the real TWS API socket protocol, served from a portfolio."""

from v6_pipeline.ib.gateway.faults import Fault, FaultError, FaultName, parse_fault
from v6_pipeline.ib.gateway.portfolio import (
    Portfolio,
    PortfolioError,
    PortfolioPosition,
    load_portfolio,
    parse_portfolio,
)
from v6_pipeline.ib.gateway.server import Gateway, ReceivedRequest, SnapshotServed
from v6_pipeline.ib.gateway.thread import GatewayThread

__all__ = [
    "Fault",
    "FaultError",
    "FaultName",
    "Gateway",
    "GatewayThread",
    "Portfolio",
    "PortfolioError",
    "PortfolioPosition",
    "ReceivedRequest",
    "SnapshotServed",
    "load_portfolio",
    "parse_fault",
    "parse_portfolio",
]
