"""Two daemons on one PostgreSQL: the alert state they share is written by compare-and-swap
in PostgreSQL, so an incident pages once however the ticks interleave."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import pytest

from v6_pipeline.alerts.ledger import Ledger
from v6_pipeline.defs.sensors import discrepancy_alert_sensor
from v6_pipeline.run.runner import run_windows
from v6_pipeline_tests.alerts.support import Webhook
from v6_pipeline_tests.defs.support import Pipeline
from v6_pipeline_tests.defs.test_alert_evaluators import _tick_at, raised
from v6_pipeline_tests.defs.test_sensors import Sensor, alerting, hook, titles

__all__ = ["hook"]  # the fixture


def test_two_daemons_on_one_postgres_page_once(
    pipeline: Pipeline, hook: Webhook, pg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = alerting(pipeline, hook)
    with dg.DagsterInstance.from_config(str(pg_home)) as other:
        a = Sensor(discrepancy_alert_sensor, defs, pipeline.instance)
        b = Sensor(discrepancy_alert_sensor, defs, other)
        key = pipeline.newest_key()
        run_windows(defs, key, instance=pipeline.instance)

        # The race made certain: B ticks in full between A's read and A's write.
        swap = Ledger.swap
        between = [b.tick]

        def swap_after_b(ledger: Ledger, old: str | None, new: str) -> bool:
            if between:
                between.pop()()
            return swap(ledger, old, new)

        with monkeypatch.context() as patched:
            patched.setattr(Ledger, "swap", swap_after_b)
            said = a.tick()
        assert b.said[-1].startswith("alerted: open naked-"), b.said
        assert "another evaluator wrote the shared state first 1 time(s)" in said, said

        # Then both at once, round after round.
        for _ in range(3):
            run_windows(defs, key, instance=pipeline.instance)
            start = threading.Barrier(2)
            errors: list[BaseException] = []
            threads = [threading.Thread(target=_tick_at, args=(e, start, errors)) for e in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
    assert len(hook.received) == 1, titles(hook)
    assert [kind for _, kind in raised(pipeline)] == ["open"]
