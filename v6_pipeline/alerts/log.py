"""The `alert_log` Delta table: "were we told?", answered after the fact.

One row when an alert is raised (`status` raised, `url` null) and one per sink and
tick that tried it (`delivered`, `pending` = failed and will retry, `lost` = given up).
URLs are redacted to scheme and host. Appends only; `v6 lake maintain` compacts it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from v6_pipeline.alerts.delivery import Outcome
from v6_pipeline.lake import paths
from v6_pipeline.lake.paths import table_uri
from v6_pipeline.lake.storage import reported, storage_options

TABLE = paths.ALERT_LOG
MAX_BODY_CHARS = 4000

SCHEMA = pa.schema(
    [
        pa.field("sent_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # open, changed, reminder, resolved
        pa.field("status", pa.string(), nullable=False),  # raised, delivered, pending, lost
        pa.field("severity", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("body", pa.string(), nullable=False),
        pa.field("url", pa.string()),  # redacted; null on the `raised` row
        pa.field("delivered", pa.bool_()),  # null on the `raised` row
        pa.field("attempts", pa.int64(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("window_key", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)


def alert_log_uri(lake_dir: str | os.PathLike[str]) -> str:
    return table_uri(lake_dir, TABLE)


def append(lake_dir: str | os.PathLike[str], outcomes: Sequence[Outcome]) -> int:
    """Append one row per outcome (creating the table); returns the number of rows."""
    if not outcomes:
        return 0
    rows = pa.Table.from_pylist([_row(o) for o in outcomes], schema=SCHEMA)
    uri = alert_log_uri(lake_dir)
    with reported(os.fspath(lake_dir)):
        write_deltalake(uri, rows, mode="append", storage_options=storage_options(uri))
    return rows.num_rows


def read(lake_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """Every row, oldest first; empty (with the schema) when nothing was logged yet."""
    uri = alert_log_uri(lake_dir)
    options = storage_options(uri)
    with reported(os.fspath(lake_dir)):
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return pl.DataFrame(pl.from_arrow(SCHEMA.empty_table()))
        return pl.read_delta(uri, storage_options=options).sort("sent_at", maintain_order=True)


def _row(o: Outcome) -> dict[str, object]:
    env = o.envelope
    return {
        "sent_at": o.at,
        "incident_id": env.incident_id,
        "kind": env.kind,
        "status": o.status,
        "severity": env.severity,
        "title": env.message.title,
        "body": env.message.body[:MAX_BODY_CHARS],
        "url": o.url,
        "delivered": o.delivered,
        "attempts": o.attempts,
        "error": o.error,
        "window_key": env.window_key,
        "run_id": env.run_id,
    }
