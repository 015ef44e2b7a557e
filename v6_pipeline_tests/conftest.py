"""Fixtures for every test folder: the gateway emulator serving the demo portfolio."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator

import pytest

from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline_tests.support import DEMO

# A live run settles and confirms in seconds of wall time (docs/reconciliation.md):
# the tests that are about it set their own; the rest of the suite, and the commands
# it starts, skip the waits (a confirmation still takes its second snapshot).
os.environ.setdefault("V6_SETTLE_S", "0")
os.environ.setdefault("V6_CONFIRM_AFTER_S", "0")


class InstanceContextLeakWarning(UserWarning):
    """A test left a Dagster instance context open."""


@pytest.fixture(autouse=True)
def _instance_context_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test leaves Dagster's current instance context as it found it.

    Entering a Dagster instance sets a context variable to its definitions-state storage,
    which holds only a weakref to the instance. A context opened and never closed
    (`dg.build_schedule_context(...)` without `with`: its `context.instance` opens an
    instance from the ref; `resource.process_config_and_initialize()`: an ephemeral one)
    is closed whenever the garbage collector gets to it, and puts back the storage of
    the test's instance, closed by then: a later test's definitions load then fails with
    "Attempted to resolve undefined DagsterInstance weakref". Such a leak is named here
    (use `with`, or `process_config_and_initialize_cm`), and the context put back, so
    that it cannot fail another test.
    """
    base = sys.modules.get("dagster._core.storage.defs_state.base")
    before = base.DefsStateStorage.get() if base else None
    yield
    base = sys.modules.get("dagster._core.storage.defs_state.base")
    if base is None or base.DefsStateStorage.get() is before:
        return
    base._current_storage.set(before)  # Dagster has no public way to put it back
    warnings.warn(
        InstanceContextLeakWarning(
            f"{request.node.nodeid} left a Dagster instance context open (a schedule or "
            "sensor context used without `with`, or process_config_and_initialize()); "
            "it was put back as the test found it"
        ),
        stacklevel=1,
    )


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
