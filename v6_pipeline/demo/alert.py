"""The alert the demo's critical finding raises: the real `discrepancy_alert_sensor`,
ticked once on the demo's instance, and what it wrote to `alert_log`, printed."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from v6_pipeline.alerts import log as alert_log
from v6_pipeline.defs.sensors import discrepancy_alert_sensor


def raise_alerts(
    defs: dg.Definitions, instance: dg.DagsterInstance, lake_dir: Path
) -> pl.DataFrame:
    """Tick the sensor as the daemon would (sending to the alerts resource's URLs); the
    `alert_log` rows it wrote."""
    before = alert_log.read(lake_dir).height
    # The sensor also logs each alert to the console; `print_alerts` shows it once, for a
    # person. Its log is shown only when the tick fails.
    log = io.StringIO()
    try:
        with contextlib.redirect_stderr(log):
            context = dg.build_sensor_context(instance=instance, resources=defs.resources)
            discrepancy_alert_sensor.evaluate_tick(context)
    except Exception:
        sys.stderr.write(log.getvalue())
        raise
    return alert_log.read(lake_dir).slice(before)


def print_alerts(rows: pl.DataFrame, *, out: Callable[[str], None] = print) -> None:
    """Each alert raised, as it reads in Slack or an e-mail, then where it went."""
    for alert in rows.filter(pl.col("status") == "raised").iter_rows(named=True):
        out(f"  {alert['title']}")
        for line in alert["body"].splitlines():
            out(f"  | {line}".rstrip())
    for sent in rows.filter(pl.col("status") != "raised").iter_rows(named=True):
        error = f": {sent['error']}" if sent["error"] else ""
        out(f"  -> {sent['url']}: {sent['status']}{error}")
