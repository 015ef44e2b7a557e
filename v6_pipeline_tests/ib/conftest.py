"""Fixtures for the gateway tests: a running gateway on port 0 and ib_async clients."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from ib_async import IB

from v6_pipeline.ib.gateway import Gateway
from v6_pipeline_tests.ib.support import SAMPLE, Connect


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with Gateway(SAMPLE, handshake_timeout=1.0) as gw:
        yield gw


@pytest.fixture
async def connect(gateway: Gateway) -> AsyncIterator[Connect]:
    """`await connect()` -> an ib_async IB connected read-only with a fresh client id."""
    clients: list[IB] = []
    ids = itertools.count(1)

    async def connect_one(
        client_id: int | None = None, *, readonly: bool = True, timeout: float = 5.0
    ) -> IB:
        ib = IB()
        clients.append(ib)
        await ib.connectAsync(
            gateway.host,
            gateway.port,
            clientId=next(ids) if client_id is None else client_id,
            readonly=readonly,
            timeout=timeout,
        )
        return ib

    yield connect_one
    for ib in clients:
        ib.disconnect()
