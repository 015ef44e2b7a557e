"""Fixtures for every test folder: the gateway emulator serving the demo portfolio."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline_tests.support import DEMO

# A live run settles and confirms in seconds of wall time (README, "Fills in flight"):
# the tests that are about it set their own; the rest of the suite, and the commands
# it starts, skip the waits (a confirmation still takes its second snapshot).
os.environ.setdefault("V6_SETTLE_S", "0")
os.environ.setdefault("V6_CONFIRM_AFTER_S", "0")


@pytest.fixture(scope="session")
def demo_gateway_thread() -> Iterator[GatewayThread]:
    with GatewayThread(DEMO) as gw:
        yield gw


@pytest.fixture
def demo_gateway(demo_gateway_thread: GatewayThread) -> Iterator[GatewayThread]:
    """The shared emulator, with no faults and the demo portfolio, before and after."""
    demo_gateway_thread.set_faults([])
    demo_gateway_thread.set_portfolio(DEMO)
    yield demo_gateway_thread
    demo_gateway_thread.set_faults([])
    demo_gateway_thread.set_portfolio(DEMO)
