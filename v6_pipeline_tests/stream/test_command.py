"""`v6 stream` as a process: SIGHUP'd gateway to Delta, SIGTERM flushing, `--once`, and
the errors it exits with."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from v6_pipeline.cli.stream import run
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.stream.status import read_stream_status
from v6_pipeline_tests.stream.support import (
    GatewayAddress,
    StreamerThread,
    all_rows,
    caught_up,
    latest,
    newest_status,
    settings,
    start_stream,
    stream_env,
    wait_until,
    with_position,
    write_portfolio,
)
from v6_pipeline_tests.support import DEMO, free_port

SPY_C = ("DU111", 500001)
STARTUP_S = 60  # the process imports Dagster for its settings: slow on a busy machine


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """`v6 gateway` serving the demo portfolio from a file: (process, port, file)."""
    portfolio = tmp_path / "portfolio.json"
    write_portfolio(portfolio, DEMO)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "v6_pipeline.cli",
            "gateway",
            "--port=0",
            f"--portfolio={portfolio}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    match = re.fullmatch(r"listening on \S+:(\d+)\n", process.stdout.readline())
    assert match
    yield process, int(match[1]), portfolio
    process.terminate()
    process.wait(10)


def stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def test_a_fill_pushed_on_sighup_is_in_delta_within_3_s(
    gateway_process: tuple[subprocess.Popen[str], int, Path], lake_dir: Path
) -> None:
    gateway, port, portfolio = gateway_process
    # the stream in this process (its own is tested below): only the gateway's signal matters
    served = GatewayAddress(host="127.0.0.1", port=port)
    with StreamerThread(settings(served, lake_dir, flush_s=1.0)):  # the default flush
        caught_up(lake_dir)
        write_portfolio(portfolio, with_position(DEMO, 0, position=-4.0))
        gateway.send_signal(signal.SIGHUP)
        took = wait_until(lambda: latest(lake_dir)[SPY_C] == -4.0, what="the fill in Delta")
    assert took < 3.0, took


def test_sigterm_flushes_the_last_batch(gateway: GatewayThread, lake_dir: Path) -> None:
    env = stream_env(gateway.port, lake_dir, V6_STREAM_FLUSH_S="30", V6_STREAM_HEARTBEAT_S="0.2")
    stream = start_stream(env)
    try:
        caught_up(lake_dir, timeout=STARTUP_S)  # a reconnect's repairs are committed at once
        gateway.set_portfolio(with_position(DEMO, 0, position=-4.0))
        wait_until(lambda: newest_status(lake_dir).get("pending") == 1, what="a row pending")
        assert latest(lake_dir)[SPY_C] == -3.0  # its batch is not due for 30 s
    finally:
        code, out, err = stop(stream)
    assert code == 0, err
    assert latest(lake_dir)[SPY_C] == -4.0
    assert "6 row(s) written in 2 commit(s)" in out
    assert "could NOT be written" not in out
    assert newest_status(lake_dir)["connected"] is False


def once(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> int:
    """`v6 stream --once` in this process (a process of its own costs seconds to start)."""
    for name, value in env.items():
        if name.startswith("V6_"):
            monkeypatch.setenv(name, value)
    return run(argparse.Namespace(once=True))


def test_once_writes_one_snapshot_and_exits(
    gateway: GatewayThread,
    lake_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="v6_pipeline")
    env = stream_env(gateway.port, lake_dir)
    assert once(monkeypatch, env) == 0
    assert "5 row(s) written in 1 commit(s)" in capsys.readouterr().out
    caught_up(lake_dir)
    assert "repair: DU111 SPY 20270115 600 C (OPT) conid 500001: Delta no row -> IB -3" in (
        caplog.text
    )
    assert once(monkeypatch, env) == 0
    assert "0 row(s) written" in capsys.readouterr().out
    assert all_rows(lake_dir).height == 5
    assert read_stream_status(lake_dir).height == 2  # one status row per run


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"V6_LAKE_DIR": "{tmp}/typo"}, "{tmp}/typo/position_updates"),
        ({"V6_STREAM_HEARTBEAT_S": "often"}, "V6_STREAM_HEARTBEAT_S='often' is not a number"),
        ({"V6_STREAM_CLIENT_ID": "606"}, "V6_STREAM_CLIENT_ID=606 is the pipeline's client id"),
        ({"V6_IB_PORT": "{closed}", "V6_IB_TIMEOUT_S": "1"}, "Cannot reach IB Gateway/TWS"),
    ],
)
def test_it_exits_1_with_a_sentence(
    lake_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, str],
    words: str,
) -> None:
    values = {"tmp": str(tmp_path), "closed": str(free_port())}
    env = stream_env(free_port(), lake_dir)
    env.update({k: v.format(**values) for k, v in settings.items()})
    assert once(monkeypatch, env) == 1
    assert words.format(**values) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        # issue #20: it named the pipeline's V6_IB_CLIENT_ID
        ("client-id-in-use", ("refused client id 607", "Set V6_STREAM_CLIENT_ID to an id")),
        # issue #20: a traceback ("unexpected value while building Series of type Int64")
        (
            "huge-conid",
            (
                f"conid {2**64}",
                "account DU111, SPY 20270115 600 C (OPT)",
                "so it was discarded and nothing was stored",
                "Check the gateway's log and version",
            ),
        ),
    ],
)
def test_once_says_what_is_wrong_with_the_gateway_in_a_sentence(
    gateway: GatewayThread,
    lake_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    words: tuple[str, ...],
) -> None:
    gateway.set_faults([fault])
    assert once(monkeypatch, stream_env(gateway.port, lake_dir)) == 1
    err = capsys.readouterr().err
    assert err.startswith("v6 stream: IB")
    for word in words:
        assert word in err
    assert "V6_IB_CLIENT_ID" not in err
    assert all_rows(lake_dir).height == 0  # nothing written from a snapshot it refused
