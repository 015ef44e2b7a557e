"""IB's nightly reset during a live run: waited out inside `V6_IB_QUIET_WINDOWS`.

The emulator's `restart:SECONDS` fault drops every connection and refuses new ones for
that long. Outside a quiet window a reset longer than `V6_IB_TIMEOUT_S` fails the run
at once; inside one the snapshot is tried again until the window's deadline.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.defs.partitions import last_closed_window
from v6_pipeline.defs.resources import AlertsResource, IBGatewayResource
from v6_pipeline.ib.errors import GatewayUnreachableError
from v6_pipeline.quiet_retry import described, live_deadline, snapshot_through_resets
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_FAILED, run_windows
from v6_pipeline_tests.defs.support import Pipeline
from v6_pipeline_tests.support import free_port

RESET_S = 4.0
TIMEOUT_S = "1"  # shorter than the reset


def _quiet_now() -> str:
    """A quiet window around now (UTC), as `V6_IB_QUIET_WINDOWS` spells it."""
    now = datetime.now(UTC)
    return f"{now - timedelta(minutes=30):%H:%M}-{now + timedelta(minutes=30):%H:%M} UTC"


def _run_through_a_reset(pipeline: Pipeline, quiet_windows: str):  # -> Outcome
    defs = pipeline.with_resources(
        ib=IBGatewayResource(port=pipeline.gateway.port, timeout_s=TIMEOUT_S),
        alerts=AlertsResource(quiet_windows=quiet_windows),
    )
    pipeline.gateway.set_faults([f"restart:{RESET_S:g}"])
    return run_windows(defs, pipeline.newest_key(), instance=pipeline.instance)


def test_a_reset_longer_than_the_timeout_fails_the_run_loudly_outside_quiet_windows(
    pipeline: Pipeline,
) -> None:
    started = time.monotonic()
    outcome = _run_through_a_reset(pipeline, quiet_windows="")
    assert outcome.exit_code == EXIT_FAILED
    assert f"Cannot reach IB Gateway/TWS at 127.0.0.1:{pipeline.gateway.port}" in outcome.failure
    assert time.monotonic() - started < RESET_S + 10


def test_inside_a_quiet_window_the_same_reset_is_waited_out(pipeline: Pipeline) -> None:
    # The retries need time before the window's deadline: not in its last seconds.
    now = datetime.now(UTC)
    left = (live_deadline(last_closed_window(now)) - now).total_seconds()
    if left < 20:
        time.sleep(left + 31)  # the next window has closed: a fresh deadline
    outcome = _run_through_a_reset(pipeline, quiet_windows=_quiet_now())
    # The window was judged (the demo book's naked leg fails its check, as it should).
    assert outcome.exit_code == EXIT_CRITICAL, outcome.failure
    assert not outcome.discrepancies.is_empty()


def test_given_up_at_the_deadline_the_error_says_how_long_it_tried() -> None:
    port = free_port()  # nothing listens: a gateway that never comes back
    ib = IBGatewayResource(port=port, timeout_s="0.3")
    deadline = datetime.now(UTC) + timedelta(seconds=2)
    started = time.monotonic()
    with pytest.raises(GatewayUnreachableError) as raised:
        snapshot_through_resets(
            ib.snapshot,
            quiet=QuietWindows.parse(_quiet_now()),
            deadline=deadline,
            log=logging.getLogger("test"),
            pause_s=0.5,
        )
    assert time.monotonic() - started < 4
    sentence = described(raised.value)
    assert f"127.0.0.1:{port}" in sentence
    assert "time(s) inside V6_IB_QUIET_WINDOWS" in sentence
    assert f"until the window's deadline {deadline:%H:%M:%S} UTC" in sentence


def test_the_deadline_leaves_the_next_windows_run_its_slot() -> None:
    window = datetime(2026, 11, 30, 23, 50, tzinfo=UTC)
    assert live_deadline(window) == datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)
