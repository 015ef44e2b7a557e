"""`v6 gateway` as a process: the listening line, SIGHUP and file reloads, bad files,
clean shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from ib_async import IB

from v6_pipeline.ib.error_codes import ErrorCode
from v6_pipeline.ib.gateway import Portfolio
from v6_pipeline.ib.protocol import Incoming, Outgoing
from v6_pipeline_tests.ib.support import SAMPLE, RawClient, fields, ib_rows, row_of, rows, until

pytestmark = pytest.mark.anyio

COMMAND = [sys.executable, "-m", "v6_pipeline.cli", "gateway"]  # `v6 gateway`


@dataclasses.dataclass
class Running:
    process: asyncio.subprocess.Process
    host: str
    port: int
    log: Path

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        async with asyncio.timeout(10):
            return await self.process.wait()


Start = Callable[..., Awaitable[Running]]


def write_portfolio(path: Path, portfolio: Portfolio) -> None:
    entries = [dataclasses.asdict(p) for p in portfolio.positions]
    path.write_text(json.dumps({"accounts": list(portfolio.accounts), "positions": entries}))


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """`await start(portfolio_file, *flags)` -> a running `v6 gateway` on a free port."""
    running: list[Running] = []

    async def start_one(portfolio: Path, *flags: str) -> Running:
        log = tmp_path / f"gateway-{len(running)}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "--port",
                "0",
                "--portfolio",
                str(portfolio),
                *flags,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"listening on (\S+):(\d+)\n", line)
        assert match, f"{line!r}; log: {log.read_text()}"
        running.append(Running(process, match[1], int(match[2]), log))
        return running[-1]

    yield start_one
    for r in running:
        if r.process.returncode is None:
            r.process.kill()
            await r.process.wait()


@pytest.fixture
def portfolio_file(tmp_path: Path) -> Path:
    path = tmp_path / "portfolio.json"
    write_portfolio(path, SAMPLE)
    return path


async def connected(gateway: Running) -> IB:
    ib = IB()
    await ib.connectAsync(gateway.host, gateway.port, clientId=1, readonly=True, timeout=5)
    return ib


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serves_the_file_and_stops_cleanly(
    start: Start, portfolio_file: Path, signum: int
) -> None:
    gateway = await start(portfolio_file)
    assert gateway.host == "127.0.0.1"
    assert gateway.port > 0
    ib = await connected(gateway)
    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)

    assert await gateway.stop(signum) == 0

    await until(lambda: not ib.isConnected())
    assert gateway.process.stdout is not None
    assert await gateway.process.stdout.read() == b""  # one line, nothing more


async def test_sighup_reloads_and_pushes_to_open_subscriptions(
    start: Start, portfolio_file: Path
) -> None:
    gateway = await start(portfolio_file)
    ib = await connected(gateway)
    pushed: list[tuple[int, float]] = []
    ib.positionEvent += lambda p: pushed.append((p.contract.conId, p.position))
    before = portfolio_file.stat()
    # same size and modification time: only the signal can tell the file changed
    changed = dataclasses.replace(SAMPLE.positions[0], position=-4)
    write_portfolio(portfolio_file, Portfolio.of([changed, *SAMPLE.positions[1:]]))
    assert portfolio_file.stat().st_size == before.st_size
    os.utime(portfolio_file, ns=(before.st_atime_ns, before.st_mtime_ns))

    gateway.send(signal.SIGHUP)

    await until(lambda: pushed == [(changed.conid, -4.0)])
    ib.disconnect()


async def test_a_changed_file_is_reloaded_without_a_signal(
    start: Start, portfolio_file: Path
) -> None:
    gateway = await start(portfolio_file)
    ib = await connected(gateway)
    pushed: list[tuple[int, float]] = []
    ib.positionEvent += lambda p: pushed.append((p.contract.conId, p.position))

    write_portfolio(portfolio_file, Portfolio.of(SAMPLE.positions[1:], SAMPLE.accounts))

    await until(lambda: pushed == [(SAMPLE.positions[0].conid, 0.0)])
    ib.disconnect()


async def test_a_bad_file_on_reload_keeps_the_previous_portfolio(
    start: Start, portfolio_file: Path
) -> None:
    gateway = await start(portfolio_file)
    entries = [dataclasses.asdict(p) for p in SAMPLE.positions]
    entries[2]["conid"] = "abc"
    portfolio_file.write_text(json.dumps({"positions": entries}))

    gateway.send(signal.SIGHUP)

    await until(lambda: "kept the previous portfolio" in gateway.log.read_text())
    assert "positions[2].conid" in gateway.log.read_text()
    ib = await connected(gateway)
    assert ib_rows(await ib.reqPositionsAsync()) == rows(SAMPLE)
    ib.disconnect()


async def test_fault_flags_apply(start: Start, portfolio_file: Path) -> None:
    gateway = await start(portfolio_file, "--fault", "connectivity-lost", "--fault", "delay:0")
    raw = await RawClient.open(gateway.host, gateway.port)
    await raw.start(client_id=1)

    raw.send(Incoming.REQ_POSITIONS, 1)

    error = await raw.read()
    assert error[:4] == fields(Outgoing.ERR_MSG, 2, -1, ErrorCode.CONNECTIVITY_LOST)
    raw.close()


def test_a_bad_file_at_start_is_an_error_naming_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    entries = [dataclasses.asdict(p) for p in SAMPLE.positions]
    del entries[1]["sec_type"]
    path.write_text(json.dumps({"positions": entries}))

    done = subprocess.run(
        [*COMMAND, "--port", "0", "--portfolio", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert "positions[1].sec_type: required field missing" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fault", "flaky"], "unknown fault 'flaky'"),
        (["--fault", "delay:soon"], "delay needs seconds"),
    ],
)
def test_a_bad_fault_is_a_usage_error(portfolio_file: Path, flags: list[str], message: str) -> None:
    done = subprocess.run(
        [*COMMAND, "--port", "0", "--portfolio", str(portfolio_file), *flags],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert message in done.stderr


def test_portfolio_round_trips_through_the_file(portfolio_file: Path) -> None:
    from v6_pipeline.ib.gateway import load_portfolio

    assert sorted(row_of(p) for p in load_portfolio(portfolio_file).positions) == rows(SAMPLE)
