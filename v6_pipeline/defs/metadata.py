"""Materialization metadata that tells the story in the Dagster UI."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import polars as pl
import pyarrow as pa

MAX_TABLE_ROWS = 50  # a markdown table longer than this is cut, saying so


# What a column means, for the asset pages' column tables.
COLUMN_DOCS = {
    "window_start": "start of the 5-minute UTC window [start, start + 5 min)",
    "taken_at": "when IB's complete answer (positionEnd) arrived, UTC",
    "as_of": "the moment compared: the window's snapshot taken_at",
    "account": "IB account",
    "conid": "IB contract id",
    "sec_type": "OPT, STK, FUT, ...",
    "expiry": "last trade date or contract month, YYYYMMDD",
    "position": "signed quantity; 0 = closed",
    "avg_cost": "average cost, multiplier included",
    "type": "NAKED_POSITION, MISSING_FROM_DELTA, POSITION_MISMATCH or STALE_DATA",
    "severity": "critical (NAKED_POSITION) or warning",
    "ib_position": "IB's quantity; 0 when IB does not report the key",
    "delta_position": "the latest position_updates quantity; null when Delta has no row",
    "delta_updated_at": "timestamp of that latest position_updates row",
    "details": "what happened and what to check, for the person on call",
    "timestamp": "when the position changed, UTC",
}


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                description=COLUMN_DOCS.get(f.name),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema
        ]
    )


def markdown_table(
    frame: pl.DataFrame, columns: list[str], *, empty: str
) -> dg.MarkdownMetadataValue:
    """A markdown table of `columns`, at most `MAX_TABLE_ROWS` rows."""
    if frame.is_empty():
        return dg.MetadataValue.md(empty)
    shown = frame.head(MAX_TABLE_ROWS)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *(
            "| " + " | ".join(_cell(row[c]) for c in columns) + " |"
            for row in shown.iter_rows(named=True)
        ),
    ]
    if frame.height > MAX_TABLE_ROWS:
        lines.append(f"\n… and {frame.height - MAX_TABLE_ROWS} more rows in the Delta table.")
    return dg.MetadataValue.md("\n".join(lines))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def timestamp(value: datetime) -> dg.TimestampMetadataValue:
    return dg.MetadataValue.timestamp(value)


def per_account(frame: pl.DataFrame) -> dg.JsonMetadataValue:
    counts = frame.group_by("account").len().sort("account")
    return dg.MetadataValue.json(dict(counts.iter_rows()))
