"""A sensor's tick without Dagster: cursor JSON carried from tick to tick, a real
webhook, a real alert_log table."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.alerts.delivery import Courier
from v6_pipeline.alerts.incidents import Policy
from v6_pipeline.alerts.state import IncidentKind
from v6_pipeline.alerts.tick import AlertCursor, run_tick
from v6_pipeline_tests.alerts.support import T0, WINDOW, leg, webhook, window

NAKED = Policy(follow=frozenset({IncidentKind.NAKED}), remind_after=None)
logger = logging.getLogger("v6_pipeline.alerts")


def test_five_windows_of_the_same_naked_leg_then_clear_post_twice(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with webhook() as hook:
        courier = Courier([hook.apprise_url], give_up_after=timedelta(days=1))
        text = None
        summaries = []
        for n in range(6):
            legs = [leg(1)] if n < 5 else []
            cursor, report = run_tick(
                AlertCursor.from_json(text),
                [window(T0 + n * WINDOW, *legs)],
                position=100 + n,
                now=T0 + (n + 1) * WINDOW,
                policy=NAKED,
                courier=courier,
                ui_url="http://127.0.0.1:3000",
                lake_dir=lake,
                log=logger,
            )
            text = cursor.to_json()
            summaries.append(report.summary())
    assert [p["type"] for p in hook.received] == ["failure", "success"]
    assert AlertCursor.from_json(text).position == 105
    assert summaries[0] == (
        "alerted: open naked-2026-11-25-14:00 (1 leg) → 1 sink delivered; 1 new observation(s)"
    )
    assert summaries[1] == (
        "nothing new (1 incident(s) open: naked-2026-11-25-14:00); 1 new observation(s)"
    )
    assert summaries[5].startswith(
        "alerted: resolved naked-2026-11-25-14:00 (window 2026-11-25-14:25 has none of its "
        "legs) → 1 sink delivered"
    )
    rows = alert_log.read(lake)
    assert sorted(zip(rows["kind"], rows["status"], strict=True)) == [
        ("open", "delivered"),
        ("open", "raised"),
        ("resolved", "delivered"),
        ("resolved", "raised"),
    ]


def test_a_lake_error_in_the_alert_log_does_not_resend_the_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with webhook() as hook:
        courier = Courier([hook.apprise_url], give_up_after=timedelta(days=1))
        with caplog.at_level(logging.ERROR, logger="v6_pipeline.alerts"):
            cursor, report = run_tick(
                AlertCursor(),
                [window(T0, leg(1))],
                position=1,
                now=T0 + WINDOW,
                policy=NAKED,
                courier=courier,
                ui_url="http://127.0.0.1:3000",
                lake_dir=not_a_dir,
                log=logger,
            )
    assert len(hook.received) == 1
    assert len(report.alerts) == 1
    assert cursor.state.open(IncidentKind.NAKED) is not None  # the cursor moves on
    assert any("could not append 2 row(s) to alert_log" in r.message for r in caplog.records)
