"""`v6 alerts test` as a user runs it, against real local HTTP sinks: one that answers
200, one that answers 500, one that refuses connections. The three lines tell them
apart, and alert_log records the test as a test."""

from __future__ import annotations

import re
from pathlib import Path

from v6_pipeline.alerts import log as alert_log
from v6_pipeline_tests.alerts.support import webhook
from v6_pipeline_tests.support import free_port, v6


def test_each_sink_says_delivered_or_what_it_answered(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    refused = free_port()  # nothing listens there
    with webhook() as ok, webhook() as broken:
        broken.status = 500
        urls = f"{ok.apprise_url}, {broken.apprise_url} json://127.0.0.1:{refused}/hook"
        proc = v6("alerts", "test", env={"V6_ALERT_URLS": urls, "V6_LAKE_DIR": str(lake)})
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    lines = [line for line in out.splitlines() if line[:2] in ("✓ ", "✗ ")]
    assert lines[0] == f"✓ json://127.0.0.1:{ok.port}: delivered"
    assert re.fullmatch(
        rf"✗ json://127\.0\.0\.1:{broken.port}: not delivered: .*error=500.*", lines[1]
    ), lines[1]
    assert re.fullmatch(
        rf"✗ json://127\.0\.0\.1:{refused}: not delivered: A Connection error occurred .*",
        lines[2],
    ), lines[2]
    assert len(lines) == 3
    assert "2 of 3 sink(s) did not take the test alert" in out
    # The healthy sink got one clearly-marked message; the failing one was asked once.
    assert [m["title"] for m in ok.received] == ["[TEST] v6_pipeline test alert: no action needed"]
    assert "no action needed" in ok.received[0]["title"]
    assert "TEST alert sent by `v6 alerts test`" in ok.received[0]["message"]
    assert len(broken.received) == 1
    # Recorded as a test: the raised row, then one row per sink with its answer.
    rows = alert_log.read(lake)
    assert rows["kind"].to_list() == ["test"] * 4
    assert rows["status"].to_list() == ["raised", "delivered", "failed", "failed"]
    assert rows["delivered"].to_list() == [None, True, False, False]
    assert "error=500" in rows["error"][2]
    assert rows["incident_id"].n_unique() == 1
    assert rows["incident_id"][0].startswith("test-")


def test_every_sink_delivered_is_exit_0(tmp_path: Path) -> None:
    with webhook() as ok:
        env = {"V6_ALERT_URLS": ok.apprise_url, "V6_LAKE_DIR": str(tmp_path / "lake")}
        proc = v6("alerts", "test", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every sink took the test alert" in proc.stdout
    assert len(ok.received) == 1


def test_no_sink_or_a_bad_url_says_so(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    empty = v6("alerts", "test", env={"V6_ALERT_URLS": "", "V6_LAKE_DIR": str(lake)})
    assert empty.returncode == 1
    assert "V6_ALERT_URLS is empty, so alerts reach nobody" in empty.stdout
    typo = v6("alerts", "test", env={"V6_ALERT_URLS": "jsno://x/y", "V6_LAKE_DIR": str(lake)})
    assert typo.returncode == 1
    assert "entry 1 (jsno://x) is not a URL Apprise can send to" in typo.stdout
    assert not lake.exists()  # nothing sent, nothing recorded
