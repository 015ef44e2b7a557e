"""The append-only tables (`alert_log`, `stream_status`, `stream_dead_letters`): rows
appended as they happen, read back whole or over a time range.

Each is created on its first append; a table an older version wrote gains the newer
(nullable) columns on its next append (`merge_schema`), and read back, an older row has
them null. `Lake` is their door (`Lake.append_alert_log`, `Lake.read_stream_status`...).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from v6_pipeline.lake.schemas import polars_schema
from v6_pipeline.lake.storage import storage_options
from v6_pipeline.lake.tables import PROPERTIES


def append_rows(
    uri: str, rows: pa.Table, *, properties: bool = True, merge_schema: bool = False
) -> None:
    """Append `rows` to the table at `uri`, created on the first append (with the lake's
    table `PROPERTIES` unless `properties` is false)."""
    options = storage_options(uri)
    if DeltaTable.is_deltatable(uri, storage_options=options):
        merge = {"schema_mode": "merge"} if merge_schema else {}
        write_deltalake(uri, rows, mode="append", storage_options=options, **merge)
    else:
        configuration = {"configuration": PROPERTIES} if properties else {}
        write_deltalake(uri, rows, mode="append", storage_options=options, **configuration)


def read_rows(
    uri: str,
    schema: pa.Schema,
    *,
    order_by: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """The rows with `since <= order_by <= until` (either bound optional), in `schema`'s
    columns (null where an older table lacks one), oldest first; an empty frame when the
    table was never written."""
    columns = polars_schema(schema)
    options = storage_options(uri)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return pl.DataFrame(schema=columns)
    rows = pl.scan_delta(uri, storage_options=options)
    at = pl.col(order_by)
    if since is not None:
        rows = rows.filter(at >= since)
    if until is not None:
        rows = rows.filter(at <= until)
    stored = rows.collect_schema().names()
    return (
        rows.select(
            pl.col(name) if name in stored else pl.lit(None, dtype).alias(name)
            for name, dtype in columns.items()
        )
        .sort(order_by, maintain_order=True)
        .collect()
    )
