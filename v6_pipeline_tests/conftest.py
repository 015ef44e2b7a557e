"""Fixtures for every test folder: the gateway emulator serving the demo portfolio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline_tests.support import DEMO


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
