"""`run_windows` leaves Dagster's current instance context as it found it (issue: a later
test failed with "Attempted to resolve undefined DagsterInstance weakref").

Entering a Dagster instance sets a context variable to the instance's definitions-state
storage, and the storage holds only a weakref to its instance. A context opened for a
moment (a resource initialized outside a run opens an ephemeral instance) and left for
the garbage collector to close is closed whenever the collector runs: inside some later
instance, where closing it puts back the storage of an instance long gone, and the next
definitions load fails on the dead weakref.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.defs_state.base import DefsStateStorage

from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.partitions import last_closed_window, window_key
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.demo.book import DEMO_STALE_AFTER_S, demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.run.runner import run_windows


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The collector runs only where the test says: what is left for it, it finds then."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _defs(gateway: GatewayThread, lake_dir: Path) -> dg.Definitions:
    """The project's definitions on the emulator and `lake_dir`, built anew (a built
    `Definitions` keeps the repository its first job lookup loaded)."""
    return build_defs(
        {
            "ib": IBGatewayResource(port=gateway.port, timeout_s="5"),
            "lake": LakeResource(lake_dir=str(lake_dir)),
            "settings": ReconciliationSettings.from_env(stale_after_s=str(DEMO_STALE_AFTER_S)),
            "alerts": AlertsResource(),
        }
    )


def _unreadable(self: Lake, **_: object) -> None:
    raise RuntimeError("the disk went away")


def _reconcile_and_keep_the_error(defs: dg.Definitions) -> None:
    """A run on an instance of its own whose lake read fails after the job ran; the
    caller keeps what it caught (as `pytest.raises` does, or a UI its last failure):
    the error, its traceback and these frames are then garbage only the collector frees."""
    with dg.instance_for_test() as instance:
        try:
            run_windows(defs, window_key(last_closed_window(datetime.now(UTC))), instance=instance)
        except RuntimeError as error:
            kept = error
    assert "the disk went away" in str(kept)


def test_a_run_that_raises_leaves_no_instance_context_for_the_collector_to_close(
    demo_gateway: GatewayThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    collector_off: None,
) -> None:
    Lake(tmp_path / "lake").append_position_updates(demo_position_updates(datetime.now(UTC)))
    monkeypatch.setattr(Lake, "read_discrepancies_of", _unreadable)
    _reconcile_and_keep_the_error(_defs(demo_gateway, tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        gc.collect()  # the collector runs when it runs: here, inside another instance
        current = DefsStateStorage.get()
        assert current is instance.defs_state_storage, (
            "closing a context the failed run left open put back the storage of an "
            f"instance closed since ({current!r})"
        )
        # What failed in the suite: definitions loaded against the current storage (on
        # a stale one: "Attempted to resolve undefined DagsterInstance weakref" once its
        # instance is collected, "unable to open database file" until then).
        defs = _defs(demo_gateway, tmp_path / "lake")
        assert defs.resolve_job_def("reconciliation_job").name == "reconciliation_job"
