"""The alert log: a row per alert and per delivery outcome, in a real Delta table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from v6_pipeline.alerts import log
from v6_pipeline.alerts.delivery import Courier, Outbox
from v6_pipeline.lake import schemas
from v6_pipeline_tests.alerts.support import T0, naked_envelope, webhook


def test_rows_are_written_and_read_back_with_urls_redacted(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    assert log.read(lake).is_empty()
    assert log.read(lake).columns == schemas.ALERT_LOG.names
    env = naked_envelope()
    with webhook() as up:
        with webhook() as down:
            pass
        secret_up = up.apprise_url.replace("json://", "json://user:s3cret@")
        courier = Courier([secret_up, down.apprise_url], give_up_after=timedelta(days=1))
        outbox, outcomes = courier.post(Outbox(), [env], now=T0)
    assert log.append(lake, outcomes) == 3
    assert log.append(lake, []) == 0
    later = T0 + timedelta(days=1)
    _, lost = courier.flush(outbox, now=later)
    log.append(lake, lost)

    rows = log.read(lake)
    assert (lake / "alert_log" / "_delta_log").is_dir()
    assert sorted(rows["status"]) == ["delivered", "lost", "pending", "raised"]
    by_status = {r["status"]: r for r in rows.iter_rows(named=True)}
    raised = by_status["raised"]
    assert raised["url"] is None
    assert raised["delivered"] is None
    assert raised["sent_at"] == T0
    assert raised["incident_id"] == env.incident_id
    assert (raised["kind"], raised["severity"]) == ("open", "critical")
    assert raised["title"] == env.message.title
    assert raised["body"] == env.message.body
    assert raised["window_key"] == env.window_key
    assert raised["run_id"] == env.run_id
    assert by_status["delivered"]["url"] == f"json://127.0.0.1:{up.port}"
    assert by_status["delivered"]["delivered"] is True
    assert by_status["pending"]["delivered"] is False
    assert "Connection error" in by_status["pending"]["error"]
    assert by_status["lost"]["sent_at"] == later
    assert "s3cret" not in rows.write_csv()
