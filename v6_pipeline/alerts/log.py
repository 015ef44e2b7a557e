"""The `alert_log` Delta table: "were we told?", answered after the fact.

One row when an alert is raised (`status` raised, `url` null) and one per sink and
tick that tried it (`delivered`, `pending` = failed and will retry, `lost` = given up).
URLs are redacted to scheme and host. Appends only; `v6 lake maintain` compacts it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from v6_pipeline.alerts.delivery import DeliveryOutcome
from v6_pipeline.lake import Lake

# A bound on a row's body; a composed body is already shorter (`compose.MAX_BODY_CHARS`).
MAX_LOGGED_BODY_CHARS = 4000


def append(lake_dir: str | os.PathLike[str], outcomes: Sequence[DeliveryOutcome]) -> int:
    """Append one row per outcome (creating the table); returns the number of rows."""
    if not outcomes:
        return 0
    Lake(lake_dir).append_alert_log([_row(o) for o in outcomes])
    return len(outcomes)


def read(lake_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """Every row, oldest first; empty (with the schema) when nothing was logged yet."""
    return Lake(lake_dir).read_alert_log()


def _row(o: DeliveryOutcome) -> dict[str, object]:
    env = o.envelope
    return {
        "sent_at": o.at,
        "incident_id": env.incident_id,
        "kind": env.kind,
        "status": o.status,
        "severity": env.severity,
        "title": env.message.title,
        "body": env.message.body[:MAX_LOGGED_BODY_CHARS],
        "url": o.url,
        "delivered": o.delivered,
        "attempts": o.attempts,
        "error": o.error,
        "window_key": env.window_key,
        "run_id": env.run_id,
    }
