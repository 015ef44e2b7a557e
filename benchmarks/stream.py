"""Claim: `v6 stream` puts a fill in Delta within ~2 s and keeps up with bursts, one commit
per batch; a naive writer (one commit per position message) falls behind.

    .venv/bin/python benchmarks/stream.py [--positions 2000] [--burst 500] [--rate 20] [--no-naive]

The emulator (in a thread) serves `--positions` option positions. Each writer starts on
a fresh lake, catches up with them, then two workloads are pushed on its subscription,
as IB pushes fills, from a thread of their own:

- burst: `--burst` positions change at once (one portfolio reload);
- steady: `--rate` single-position changes a second for 10 s.

Measured per writer and workload: events per second (events / time from the first push
to the commit of the last one) and the event-to-commit latency of every event (from the
gateway's push to the end of the commit that wrote its row): median and p99; and the
number of commits. Peers side by side in one run: the stream (`Streamer`, its batch
writer) at a few flush and batch limits, and a naive writer that commits each message
as it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway import synthetic  # benchmarks/ is on sys.path when this script runs

from v6_pipeline.ib.gateway import GatewayThread, Portfolio
from v6_pipeline.lake import Lake
from v6_pipeline.settings import STREAM_CLIENT_ID
from v6_pipeline.stream.settings import StreamSettings
from v6_pipeline.stream.streamer import Streamer
from v6_pipeline.stream.subscription import Subscription
from v6_pipeline.stream.updates import PositionUpdate, to_frame

CLIENT_ID = STREAM_CLIENT_ID.value()  # `v6 stream`'s default
STEADY_S = 10.0

Event = tuple[str, int, float]  # (account, conid, new quantity): unique within a run


@dataclass
class Ledger:
    """When each event was pushed, and when the commit that wrote it ended."""

    pushed: dict[Event, float] = field(default_factory=dict)
    committed: dict[Event, float] = field(default_factory=dict)
    commits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, events: Sequence[Event]) -> None:
        now = time.time()
        with self.lock:
            self.pushed.update(dict.fromkeys(events, now))

    def commit(self, batch: Sequence[PositionUpdate], committed_at: datetime) -> None:
        at = committed_at.timestamp()
        with self.lock:
            mine = [
                e for e in ((r.account, r.conid, r.position) for r in batch) if e in self.pushed
            ]
            self.committed.update(dict.fromkeys(mine, at))
            self.commits += bool(mine)

    def done(self) -> bool:
        with self.lock:
            return bool(self.pushed) and len(self.committed) >= len(self.pushed)


@dataclass(frozen=True)
class Result:
    writer: str
    workload: str
    ledger: Ledger

    def line(self) -> str:
        pushed, committed = self.ledger.pushed, self.ledger.committed
        latencies = sorted(committed[e] - pushed[e] for e in pushed)
        seconds = max(committed.values()) - min(pushed.values())
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        return (
            f"| {self.writer} | {self.workload} | {len(pushed):,} | "
            f"{len(pushed) / seconds:,.0f} | {statistics.median(latencies):.2f} s | "
            f"{p99:.2f} s | {self.ledger.commits:,} |"
        )


def burst(gw: GatewayThread, ledger: Ledger, size: int) -> None:
    rows = list(gw.portfolio.positions)
    for i in range(size):
        rows[i] = dataclasses.replace(rows[i], position=rows[i].position + 1)
    ledger.push([(p.account, p.conid, p.position) for p in rows[:size]])
    gw.set_portfolio(Portfolio(gw.portfolio.accounts, tuple(rows)))


def steady(gw: GatewayThread, ledger: Ledger, rate: float) -> None:
    started = time.monotonic()
    rows = list(gw.portfolio.positions)
    for i in range(int(rate * STEADY_S)):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        j = i % len(rows)
        rows[j] = dataclasses.replace(rows[j], position=rows[j].position + 1)
        ledger.push([(rows[j].account, rows[j].conid, rows[j].position)])
        gw.set_portfolio(Portfolio(gw.portfolio.accounts, tuple(rows)))


Workload = tuple[str, Callable[[GatewayThread, Ledger], None]]


async def run_workloads(
    writer: str, gw: GatewayThread, workloads: list[Workload], ledgers: list[Ledger]
) -> list[Result]:
    results = []
    for (name, push), ledger in zip(workloads, ledgers, strict=True):
        await asyncio.to_thread(push, gw, ledger)  # off this loop: a writer may block it
        while not ledger.done():
            await asyncio.sleep(0.01)
        results.append(Result(writer, name, ledger))
    return results


async def stream(
    gw: GatewayThread,
    lake_dir: Path,
    writer: str,
    flush_s: float,
    batch_rows: int,
    workloads: list[Workload],
) -> list[Result]:
    Lake(lake_dir).create_position_updates()
    ledgers = [Ledger() for _ in workloads]

    def on_commit(batch: Sequence[PositionUpdate], committed_at: datetime) -> None:
        for ledger in ledgers:
            ledger.commit(batch, committed_at)

    settings = StreamSettings(gw.host, gw.port, CLIENT_ID, 60.0, str(lake_dir), None, flush_s, 30)
    stop = asyncio.Event()
    task = asyncio.create_task(
        Streamer(settings, batch_rows=batch_rows, on_commit=on_commit).run(stop)
    )
    await caught_up(lake_dir, gw.portfolio)
    results = await run_workloads(writer, gw, workloads, ledgers)
    stop.set()
    await task
    return results


async def naive(gw: GatewayThread, lake_dir: Path, workloads: list[Workload]) -> list[Result]:
    """Commits each position message as it arrives; the event loop waits for each commit."""
    lake = Lake(lake_dir)
    lake.create_position_updates()
    ledgers = [Ledger() for _ in workloads]
    catching_up = True

    def on_message(message: PositionUpdate) -> None:
        if catching_up:  # its first list: not measured (a naive writer would write it all)
            return
        lake.append_position_updates(to_frame([message]))
        committed_at = datetime.now(UTC)
        for ledger in ledgers:
            ledger.commit([message], committed_at)

    subscription = Subscription(gw.host, gw.port, CLIENT_ID, on_message)
    await subscription.open(600)
    catching_up = False
    results = await run_workloads("naive: one commit per event", gw, workloads, ledgers)
    subscription.close()
    return results


async def caught_up(lake_dir: Path, portfolio: Portfolio) -> None:
    want = sum(1 for p in portfolio.positions if p.position != 0)
    lake = Lake(lake_dir)
    while (await asyncio.to_thread(lake.read_latest, as_of=datetime.now(UTC))).height < want:
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="steady events per second")
    parser.add_argument(
        "--no-naive", action="store_true", help="leave the naive writer out (large bursts)"
    )
    args = parser.parse_args()
    workloads: list[Workload] = [
        (f"burst of {args.burst}", lambda gw, ledger: burst(gw, ledger, args.burst)),
        (
            f"steady {args.rate:g}/s for {STEADY_S:g} s",
            lambda gw, ledger: steady(gw, ledger, args.rate),
        ),
    ]
    writers = [
        ("stream: flush 1 s, batch ≤ 5,000 (defaults)", 1.0, 5000),
        ("stream: flush 1 s, batch ≤ 100", 1.0, 100),
        ("stream: flush 0.25 s, batch ≤ 5,000", 0.25, 5000),
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, flush_s, batch_rows) in enumerate(writers):
            with GatewayThread(synthetic(args.positions)) as gw:
                lake_dir = Path(tmp) / f"lake{index}"
                results += asyncio.run(stream(gw, lake_dir, name, flush_s, batch_rows, workloads))
        if not args.no_naive:
            with GatewayThread(synthetic(args.positions)) as gw:
                results += asyncio.run(naive(gw, Path(tmp) / "naive", workloads))
    print(f"\n{args.positions:,} positions served; each writer on a fresh lake\n")
    print("| writer | workload | events | events/s | latency median | latency p99 | commits |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for result in results:
        print(result.line())


if __name__ == "__main__":
    main()
