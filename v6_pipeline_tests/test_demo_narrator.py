"""What `v6 demo --ui` prints while it runs: each window's verdict once, as it is judged
(a real run through a real instance, against the emulator), each alert and where it
went, and the streamer's repairs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from v6_pipeline.alerts.trial import record, send_test
from v6_pipeline.defs.partitions import last_closed_window, window_key
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.demo.narrator import Narrator
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.run.instance import open_instance
from v6_pipeline.run.runner import run_windows
from v6_pipeline_tests.alerts.support import webhook


def test_the_narrator_tells_each_verdict_alert_and_repair_once(
    tmp_path: Path, demo_gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, home = tmp_path / "lake", tmp_path / "home"
    now = datetime.now(UTC)
    Lake(lake).append_position_updates(demo_position_updates(now))
    monkeypatch.setenv("V6_IB_PORT", str(demo_gateway.port))
    monkeypatch.setenv("V6_LAKE_DIR", str(lake))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    stream_log = tmp_path / "stream.log"
    narrator = Narrator(home, lake, ui_url="http://127.0.0.1:3999/", stream_log=stream_log)
    from v6_pipeline.definitions import defs

    key = window_key(last_closed_window(now))
    with open_instance(home) as instance:
        narrator.skip_existing()
        assert narrator.poll() == []
        outcome = run_windows(defs(), key, instance=instance, log_level="CRITICAL")
    lines = narrator.poll()
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        f"UTC  window {key}: CRITICAL: 1 naked position(s), 2 warning(s)  "
        f"http://127.0.0.1:3999/runs/{outcome.run_id}"
    )
    assert narrator.poll() == []  # told once

    with webhook() as hook:
        _, outcomes = send_test([hook.apprise_url], ui_url="http://127.0.0.1:3999")
    record(str(lake), outcomes)
    stream_log.write_text(
        "2026-12-07 19:23:02,103 INFO v6_pipeline.stream.streamer: snapshot: IB lists 6\n"
        "2026-12-07 19:23:02,104 INFO v6_pipeline.stream.streamer: repair: DU222 SPY "
        "20261218 580 P (OPT) conid 500004: Delta -2 -> IB 0\n"
        "2026-12-07 19:23:02,105 INFO v6_pipeline.stream.streamer: repair: half a li"
    )
    lines = narrator.poll()
    assert lines[0].endswith("UTC  alert test: [TEST] v6_pipeline test alert: no action needed")
    assert lines[1].endswith(f"UTC    -> json://127.0.0.1:{hook.port}: delivered")
    assert lines[2:] == [
        "v6 stream: repair: DU222 SPY 20261218 580 P (OPT) conid 500004: Delta -2 -> IB 0"
    ]
    assert narrator.poll() == []
