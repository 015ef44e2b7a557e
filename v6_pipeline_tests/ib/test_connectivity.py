"""IB's connectivity codes mid-snapshot, and the gateway's nightly reset, over a real socket.

Each code of `connectivity.CONNECTIVITY` is sent by the emulator in the middle of a
positions answer (`error-mid-positions:CODE`): the codes the table says fail an answer
fail it (and are retried), the notices leave a complete snapshot. The `restart` fault
drops every connection and refuses new ones for a while, as IB's reset does.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest

from v6_pipeline.ib.connectivity import CONNECTIVITY, fails_snapshot
from v6_pipeline.ib.errors import ConnectivityLostError, GatewayUnreachableError
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.ib.gateway.faults import FaultError, parse_fault
from v6_pipeline.ib.snapshot import IBSnapshot, take_snapshot
from v6_pipeline_tests.manual import section
from v6_pipeline_tests.support import DEMO

CLIENT_ID = 606


@pytest.fixture
def gw(demo_gateway: GatewayThread) -> GatewayThread:
    return demo_gateway


def snapshot(gw: GatewayThread, **options: float) -> IBSnapshot:
    return take_snapshot(gw.host, gw.port, CLIENT_ID, **{"timeout_s": 2.0, **options})


def test_the_table_holds_ibs_documented_codes() -> None:
    assert sorted(CONNECTIVITY) == [504, 1100, 1101, 1102, 1300, 2110, 10197]
    assert {c for c in CONNECTIVITY if fails_snapshot(c)} == {504, 1100, 1101, 1300, 2110}
    assert not fails_snapshot(2104)  # a market data farm notice is not ours to judge


@pytest.mark.parametrize("code", [c for c in CONNECTIVITY if CONNECTIVITY[c].fails])
def test_a_code_that_fails_an_answer_fails_it_and_is_retried(gw: GatewayThread, code: int) -> None:
    gw.set_faults([f"error-mid-positions:{code}"])
    before = len(gw.snapshots)
    with pytest.raises(ConnectivityLostError) as raised:
        snapshot(gw, max_attempts=2, backoff_s=0.05)
    assert f"error {code} ({CONNECTIVITY[code].text})" in str(raised.value)
    assert CONNECTIVITY[code].why in str(raised.value)
    assert len(gw.snapshots) - before == 2  # transient: asked again


@pytest.mark.parametrize("code", [c for c in CONNECTIVITY if not CONNECTIVITY[c].fails])
def test_a_notice_mid_answer_keeps_the_complete_snapshot(
    gw: GatewayThread, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    gw.set_faults([f"error-mid-positions:{code}"])
    with caplog.at_level(logging.WARNING, logger="v6_pipeline.ib.snapshot"):
        snap = snapshot(gw)
    assert snap.positions.height == len(DEMO.positions)
    assert snap.attempts == 1
    assert f"IB notice {code} during the snapshot" in caplog.text


def test_the_fault_takes_only_a_code_of_the_table() -> None:
    assert str(parse_fault("error-mid-positions:1101")) == "error-mid-positions:1101"
    for bad in ("error-mid-positions", "error-mid-positions:2104", "error-mid-positions:x"):
        with pytest.raises(FaultError, match="needs a connectivity code"):
            parse_fault(bad)


def test_the_documented_table_says_what_the_code_does() -> None:
    table = section("IB's connectivity codes")  # docs/gateway.md
    rows = dict(re.findall(r"^\| (\d+) \| [^|]+ \| (fails|notice) ", table, re.MULTILINE))
    assert rows == {str(c): "fails" if k.fails else "notice" for c, k in CONNECTIVITY.items()}


def test_a_reset_shorter_than_the_timeout_is_waited_out_even_mid_answer(
    gw: GatewayThread,
) -> None:
    gw.set_faults(["delay:1"])
    result: list[IBSnapshot | BaseException] = []

    def take() -> None:
        try:
            result.append(snapshot(gw, timeout_s=10))
        except BaseException as exc:  # handed to the test thread
            result.append(exc)

    started = time.monotonic()
    taker = threading.Thread(target=take)
    taker.start()
    time.sleep(0.4)  # the answer is on its way (delayed) when the reset drops it
    gw.set_faults(["delay:1", "restart:1.5"])
    taker.join(timeout=15)
    (snap,) = result
    assert isinstance(snap, IBSnapshot), snap
    assert snap.positions.height == len(DEMO.positions)
    assert snap.attempts >= 2
    assert time.monotonic() - started >= 1.5 + 1


def test_a_reset_longer_than_the_timeout_fails_loudly_then_the_gateway_is_back(
    gw: GatewayThread,
) -> None:
    gw.set_faults(["restart:4"])
    started = time.monotonic()
    with pytest.raises(GatewayUnreachableError, match=f"127.0.0.1:{gw.port}"):
        snapshot(gw, timeout_s=1.5)
    assert time.monotonic() - started < 3.0
    snap = snapshot(gw, timeout_s=8)  # refused until the reset ends, then served
    assert snap.positions.height == len(DEMO.positions)
    assert snap.attempts >= 2
