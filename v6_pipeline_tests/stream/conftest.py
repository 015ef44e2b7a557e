"""Fixtures for the stream tests: an emulator of its own and an empty book in a tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline_tests.support import DEMO


@pytest.fixture
def gateway() -> Iterator[GatewayThread]:
    """A gateway serving the demo portfolio; each test may change or restart it."""
    with GatewayThread(DEMO, handshake_timeout=2.0) as gw:
        yield gw


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    """A lake whose `position_updates` exists and is empty (`v6 lake init`)."""
    lake = tmp_path / "lake"
    Lake(lake).create_position_updates()
    return lake
