"""Shared by the stream tests: a streamer in a thread, portfolios that change, and waits."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from v6_pipeline.ib.gateway import GatewayThread, Portfolio
from v6_pipeline.lake import Lake
from v6_pipeline.stream.settings import StreamSettings
from v6_pipeline.stream.status import read_stream_status
from v6_pipeline.stream.streamer import Streamer, StreamSummary
from v6_pipeline_tests.support import DEMO

CLIENT_ID = 607


@dataclasses.dataclass(frozen=True)
class GatewayAddress:
    """Where a gateway that runs in another process listens."""

    host: str
    port: int


def settings(
    gateway: GatewayThread | GatewayAddress, lake_dir: Path, **changes: Any
) -> StreamSettings:
    """Fast settings against `gateway`: short flush, heartbeat and snapshot timeout."""
    base = StreamSettings(
        host=gateway.host,
        port=gateway.port,
        client_id=CLIENT_ID,
        timeout_s=5.0,
        lake_dir=str(lake_dir),
        default_account=None,
        flush_s=0.2,
        heartbeat_s=0.5,
    )
    return dataclasses.replace(base, **changes)


class StreamerThread:
    """A `Streamer` running in its own thread and event loop until `stop()`."""

    def __init__(self, streamer_settings: StreamSettings, **options: Any) -> None:
        self._settings = streamer_settings
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.summary: StreamSummary | None = None
        self.error: BaseException | None = None
        self.streamer: Streamer | None = None
        self._thread = threading.Thread(target=self._main, name="v6-stream", daemon=True)

    def start(self) -> StreamerThread:
        self._thread.start()
        assert self._started.wait(10), "the streamer thread did not start"
        return self

    def stop(self) -> StreamSummary | None:
        """Stop as SIGTERM does (the pending batch is flushed); the summary."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the streamer did not stop within 30 s"
        return self.summary

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> StreamerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        streamer = self.streamer = Streamer(self._settings, **self._options)
        self._started.set()
        try:
            self.summary = await streamer.run(self._stop)
        except BaseException as exc:
            self.error = exc


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Seconds until `predicate()` held; fails after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        time.sleep(0.05)
    return time.monotonic() - started


def latest(lake_dir: Path) -> dict[tuple[str, int], float]:
    """Delta's latest quantity per (account, conid), now."""
    frame = Lake(lake_dir).read_latest(as_of=datetime.now(UTC))
    return {(r["account"], r["conid"]): r["position"] for r in frame.iter_rows(named=True)}


def all_rows(lake_dir: Path) -> pl.DataFrame:
    return pl.read_delta(str(lake_dir / "position_updates")).sort("timestamp")


def book_of(portfolio: Portfolio) -> dict[tuple[str, int], float]:
    """What Delta's latest should say once the stream has caught up (flat keys: absent
    unless Delta held them, so compare open ones)."""
    return {p.key: p.position for p in portfolio.positions if p.position != 0}


def open_latest(lake_dir: Path) -> dict[tuple[str, int], float]:
    return {k: q for k, q in latest(lake_dir).items() if q != 0}


def caught_up(lake_dir: Path, portfolio: Portfolio = DEMO, timeout: float = 10.0) -> None:
    """Wait until Delta's open positions are `portfolio`'s."""
    wait_until(lambda: open_latest(lake_dir) == book_of(portfolio), timeout, what="Delta equals IB")


def newest_status(lake_dir: Path) -> dict[str, Any]:
    rows = read_stream_status(lake_dir)
    return rows.row(-1, named=True) if rows.height else {}


def with_position(portfolio: Portfolio, index: int, **changes: Any) -> Portfolio:
    """`portfolio` with position `index` changed."""
    rows = list(portfolio.positions)
    rows[index] = dataclasses.replace(rows[index], **changes)
    return Portfolio(portfolio.accounts, tuple(rows))


def without_position(portfolio: Portfolio, index: int) -> Portfolio:
    rows = list(portfolio.positions)
    del rows[index]
    return Portfolio(portfolio.accounts, tuple(rows))


def write_portfolio(path: Path, portfolio: Portfolio) -> None:
    """`portfolio` as a file `v6 gateway --portfolio` serves."""
    entries = [dataclasses.asdict(p) for p in portfolio.positions]
    path.write_text(json.dumps({"accounts": list(portfolio.accounts), "positions": entries}))


def stream_env(port: int, lake_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a `v6 stream` process against the gateway on `port`."""
    return {
        **os.environ,
        "V6_IB_HOST": "127.0.0.1",
        "V6_IB_PORT": str(port),
        "V6_IB_TIMEOUT_S": "5",
        "V6_LAKE_DIR": str(lake_dir),
        **settings,
    }


def start_stream(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`v6 stream` in its own process (`python -m v6_pipeline.cli stream`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "v6_pipeline.cli", "stream", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
