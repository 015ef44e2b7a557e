"""Fixtures for the pipeline: the demo emulator, a lake in a tmp dir, a Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.demo.book import DEMO_STALE_AFTER_S, demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline_tests.defs.support import Pipeline, history_start


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def pipeline(tmp_path: Path, demo_gateway: GatewayThread, instance: dg.DagsterInstance) -> Pipeline:
    lake_dir = tmp_path / "lake"
    start = history_start()
    defs = build_defs(
        {
            "ib": IBGatewayResource(port=demo_gateway.port, timeout_s="2"),
            "lake": LakeResource(lake_dir=str(lake_dir)),
            "settings": ReconciliationSettings.from_env(stale_after_s=str(DEMO_STALE_AFTER_S)),
            "alerts": AlertsResource(),
        },
        start=start,
    )
    lake = Lake(lake_dir)
    lake.append_position_updates(demo_position_updates(datetime.now(UTC)))
    return Pipeline(defs, lake, instance, demo_gateway, start)
