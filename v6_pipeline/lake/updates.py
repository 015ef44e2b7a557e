"""Writing `position_updates`: create it empty, or append idempotently (last write wins)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from v6_pipeline.lake import schemas
from v6_pipeline.lake.errors import LakeSchemaError
from v6_pipeline.lake.source import (
    IDENTITY,
    STATS_PRECISION,
    bad_rows,
    check_types,
    identity,
    raise_bad_rows,
)
from v6_pipeline.lake.storage import storage_options
from v6_pipeline.lake.tables import PROPERTIES, try_open

FIX_HINT = "fix them before writing (nothing was written)"
# What identifies an update: a row with the same replaces it.
UPDATE_KEY = ("account", "conid", "timestamp")


def create_position_updates(table_uri: str) -> bool:
    """Create an empty `position_updates` (for a book that starts empty); False if it exists."""
    if try_open(table_uri) is not None:
        return False
    DeltaTable.create(
        table_uri,
        schema=schemas.POSITION_UPDATES,
        partition_by=schemas.POSITION_UPDATES_PARTITION_BY,
        mode="ignore",
        configuration=PROPERTIES,
        storage_options=storage_options(table_uri),
    )
    return True


def append_position_updates(table_uri: str, frame: pl.DataFrame) -> None:
    """Add rows; a row with the (account, conid, timestamp) of a stored one replaces it.

    Replaying the same batch is a no-op in content, so a writer may retry freely. Rows a
    reader would refuse (a null key, a non-finite position, a column of another type) are
    refused, and nothing is written. Identity values are written as they are judged:
    trimmed, upper-cased.
    """
    rows = _conform(table_uri, frame)
    if rows.height == 0:
        return
    if (table := try_open(table_uri)) is None:
        create_position_updates(table_uri)
        table = DeltaTable(table_uri, storage_options=storage_options(table_uri))
    if "account" not in pa.schema(table.schema().to_arrow()).names:
        raise LakeSchemaError(
            table_uri, "account", "is missing: this writer appends only to the current schema"
        )
    # Time bounds let Delta skip files that cannot hold a match; widened by the precision of
    # its statistics (milliseconds), which would otherwise rule out a file wrongly.
    low: datetime = rows["timestamp"].min() - STATS_PRECISION  # type: ignore[operator]
    high: datetime = rows["timestamp"].max() + STATS_PRECISION  # type: ignore[operator]
    predicate = (
        f"t.timestamp >= '{low.isoformat()}' AND t.timestamp <= '{high.isoformat()}'"
        " AND t.account = s.account AND t.conid = s.conid AND t.timestamp = s.timestamp"
    )
    (
        table.merge(
            rows.to_arrow().cast(schemas.POSITION_UPDATES),
            predicate=predicate,
            source_alias="s",
            target_alias="t",
        )
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def _conform(table_uri: str, frame: pl.DataFrame) -> pl.DataFrame:
    target = schemas.polars_schema(schemas.POSITION_UPDATES)
    for column in ("account", *schemas.POSITION_UPDATES_REQUIRED):
        if column not in frame.columns:
            raise LakeSchemaError(f"rows for {table_uri}", column, "is missing")
    check_types(f"rows for {table_uri}", frame.head(0).to_arrow().schema, fix="give it as")
    rows = frame.select(
        (identity(pl.col(name).cast(dtype)) if name in IDENTITY else pl.col(name).cast(dtype))
        if name in frame.columns
        else pl.lit(None, dtype).alias(name)
        for name, dtype in target.items()
    )
    raise_bad_rows(f"rows for {table_uri}", bad_rows(rows.lazy()).collect(), hint=FIX_HINT)
    # Within one batch too, the row given last wins.
    return rows.unique(subset=list(UPDATE_KEY), keep="last", maintain_order=True)
