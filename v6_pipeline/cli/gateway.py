"""`v6 gateway`: the emulator in the foreground until SIGINT/SIGTERM.

SIGHUP, or a change of the portfolio file, reloads it and pushes the changes to
open subscriptions; a bad file then keeps the previous portfolio served.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from v6_pipeline.ib.gateway.faults import FAULT_SPELLINGS, Fault, FaultError, parse_fault
from v6_pipeline.ib.gateway.portfolio import PortfolioError, load_portfolio
from v6_pipeline.ib.gateway.server import Gateway

HELP = "Run the IB Gateway emulator: serve a portfolio file over the TWS API socket protocol."

log = logging.getLogger(__name__)

# How often the portfolio file is checked for changes.
WATCH_INTERVAL_S = 1.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--portfolio", type=Path, required=True, metavar="FILE", help="portfolio, JSON or YAML"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        type=_fault,
        default=[],
        metavar="NAME",
        help="misbehave as a real gateway can (repeatable): " + ", ".join(FAULT_SPELLINGS),
    )


def run(args: argparse.Namespace) -> int:
    try:
        portfolio = load_portfolio(args.portfolio)
    except PortfolioError as exc:
        print(f"v6 gateway: bad portfolio: {exc}", file=sys.stderr)
        return 2
    gateway = Gateway(
        portfolio, host=args.host, port=args.port, faults=args.faults, source=args.portfolio
    )
    try:
        asyncio.run(_serve(gateway))
    except OSError as exc:  # the port is taken, the host is not ours
        print(f"v6 gateway: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _fault(spelling: str) -> Fault:
    try:
        return parse_fault(spelling)
    except FaultError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _serve(gateway: Gateway) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, gateway, "SIGHUP")
    async with gateway:
        print(f"listening on {gateway.host}:{gateway.port}", flush=True)
        watcher = asyncio.create_task(_watch(gateway))
        await stopping.wait()
        log.info("shutting down")
        watcher.cancel()


def _reload(gateway: Gateway, why: str) -> None:
    try:
        changes = gateway.reload()
    except PortfolioError as exc:
        log.error("%s: kept the previous portfolio: %s", why, exc)
        return
    log.info(
        "%s: reloaded %s: %d positions, %d changes pushed",
        why,
        gateway.source,
        len(gateway.portfolio.positions),
        len(changes),
    )


async def _watch(gateway: Gateway) -> None:
    """Reload when the file's modification time or size changes (polling: no
    dependency, and it sees editors that replace the file)."""
    assert gateway.source is not None
    last = _stamp(gateway.source)
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        stamp = _stamp(gateway.source)
        if stamp != last and stamp is not None:
            last = stamp
            _reload(gateway, "file changed")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:  # mid-replace; look again next time
        return None
    return (stat.st_mtime_ns, stat.st_size)
