"""Claim: a 10k-position snapshot crosses the gateway emulator into ib_async in under 1 s
end to end on a 2-core machine; the server's share is small (the client's decoding
dominates). IB's own ibapi client, over its threaded reader, is the peer.

    .venv/bin/python benchmarks/gateway.py [--sizes 10000 100000] [--repeat 3]

The gateway runs in a background thread (GatewayThread, as tests and `v6 demo` use
it); the clients in the main thread. End to end = from sending reqPositions to
positionEnd handled by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

from ib_async import IB
from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from v6_pipeline.ib.gateway import GatewayThread, Portfolio, PortfolioPosition


def synthetic(n: int) -> Portfolio:
    """n option positions over two accounts, every field filled as IB would."""
    rows = []
    for i in range(n):
        right, strike = "CP"[i % 2], 300 + i % 400
        rows.append(
            PortfolioPosition(
                account=f"DU{111 * (1 + i % 2)}",
                conid=100_000 + i,
                symbol="SPY",
                sec_type="OPT",
                expiry=f"2027{1 + i // 400 % 12:02d}15",
                strike=float(strike),
                right=right,
                multiplier="100",
                exchange="SMART",
                currency="USD",
                local_symbol=f"SPY   27{1 + i // 400 % 12:02d}15{right}{strike * 1000:08d}",
                trading_class="SPY",
                position=float(i % 9 - 4) or 0.5,
                avg_cost=1234.5 + i % 100,
            )
        )
    return Portfolio.of(rows)


def time_ib_async(gw: GatewayThread, n: int, repeat: int) -> tuple[float, list[float]]:
    """(connect seconds, snapshot seconds per repeat); connecting includes a snapshot."""

    async def measure() -> tuple[float, list[float]]:
        ib = IB()
        started = time.perf_counter()
        await ib.connectAsync(gw.host, gw.port, clientId=1, readonly=True, timeout=600)
        connect = time.perf_counter() - started
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            snapshot = await ib.reqPositionsAsync()
            times.append(time.perf_counter() - started)
            assert len(snapshot) == n, len(snapshot)
        ib.disconnect()
        return connect, times

    return asyncio.run(measure())


class _Reader(EWrapper, EClient):  # type: ignore[misc]
    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.count = 0
        self.ready = threading.Event()
        self.done = threading.Event()

    def nextValidId(self, order_id: int) -> None:  # noqa: N802 - ibapi's callback name
        self.ready.set()

    def position(self, account: str, contract: object, position: float, avg_cost: float) -> None:
        self.count += 1

    def positionEnd(self) -> None:  # noqa: N802 - ibapi's callback name
        self.done.set()


def time_ibapi(gw: GatewayThread, n: int, repeat: int) -> list[float]:
    app = _Reader()
    app.connect(gw.host, gw.port, clientId=2)
    reader = threading.Thread(target=app.run, daemon=True)
    reader.start()
    app.ready.wait(10)
    times = []
    for _ in range(repeat):
        app.count = 0
        app.done.clear()
        started = time.perf_counter()
        app.reqPositions()
        app.done.wait(600)
        times.append(time.perf_counter() - started)
        assert app.count == n, app.count
    app.disconnect()
    reader.join(10)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    header = (
        f"{'positions':>10} {'wire MB':>8} {'client':>9} {'best s':>8} {'median s':>9} "
        f"{'pos/s':>10} {'server build s':>15} {'server share':>13}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        portfolio = synthetic(n)
        with GatewayThread(portfolio) as gw:
            connect, async_times = time_ib_async(gw, n, args.repeat)
            ibapi_times = time_ibapi(gw, n, args.repeat)
            served = gw.snapshots
        wire_mb = served[-1].payload_bytes / 1e6
        build = statistics.median(s.build_seconds for s in served)
        for client, times in (("ib_async", async_times), ("ibapi", ibapi_times)):
            best, median = min(times), statistics.median(times)
            print(
                f"{n:>10,} {wire_mb:>8.1f} {client:>9} {best:>8.3f} {median:>9.3f} "
                f"{n / median:>10,.0f} {build:>15.3f} {build / median:>12.0%}"
            )
        print(f"{'':>10} {'':>8} {'ib_async':>9} connect incl. first snapshot: {connect:.3f} s")
    print("\nserver build: the gateway building one answer's frames; share: build / median")


if __name__ == "__main__":
    main()
