"""Shared by the pipeline tests: the project's definitions bound to the emulator and a lake."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.partitions import last_closed_window, window_key
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake

TEST_HISTORY = timedelta(days=2)  # how far back the tests' windows go


def history_start() -> datetime:
    """The first window of the tests' definitions: they judge past windows they store
    snapshots of, which the default (the first window snapshotted) would leave out."""
    return last_closed_window(datetime.now(UTC)) - TEST_HISTORY


@dataclass
class Pipeline:
    """The project's definitions bound to the emulator and a tmp lake."""

    defs: dg.Definitions
    lake: Lake
    instance: dg.DagsterInstance
    gateway: GatewayThread
    start: datetime  # the first window

    def with_resources(self, **overrides: dg.ConfigurableResource) -> dg.Definitions:
        return build_defs({**self.defs.resources, **overrides}, start=self.start)

    def newest_key(self) -> str:
        return window_key(last_closed_window(datetime.now(UTC)))
