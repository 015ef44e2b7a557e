"""Materialization metadata that tells the story in the Dagster UI."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl
import pyarrow as pa

from v6_pipeline.confirm import INFO, RESOLVED_IN_FLIGHT
from v6_pipeline.defs.partitions import window_key
from v6_pipeline.lake import schemas
from v6_pipeline.lake.snapshots import StoredSnapshot, UnjudgedWindow
from v6_pipeline.reconcile import SEVERITY, DiscrepancyType

if TYPE_CHECKING:
    from v6_pipeline.defs.resources import ReconciliationSettings
    from v6_pipeline.judging import JudgedWindow

MAX_TABLE_ROWS = 50  # a markdown table longer than this is cut, saying so


# Every type and severity a `position_discrepancies` row can hold, from the enums (a new
# type cannot be left out): the confirming snapshot's RESOLVED_IN_FLIGHT / info too.
_IN_FLIGHT = (
    f"{RESOLVED_IN_FLIGHT} ({INFO}: a candidate gone in the confirming snapshot, shown but "
    "never alerted)"
)
TYPE_DOC = (
    ", ".join(f"{t.value} ({SEVERITY[t].value})" for t in DiscrepancyType) + f", {_IN_FLIGHT}"
)
_BY_SEVERITY: dict[str, list[str]] = {}
for _type, _severity in SEVERITY.items():
    _BY_SEVERITY.setdefault(_severity.value, []).append(_type.value)
SEVERITY_DOC = (
    ", ".join(f"{severity} ({', '.join(types)})" for severity, types in _BY_SEVERITY.items())
    + f", {INFO} ({RESOLVED_IN_FLIGHT}: shown, never alerted, never fails a check)"
)

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
    "type": TYPE_DOC,
    "severity": SEVERITY_DOC,
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


def snapshot_metadata(
    snap: StoredSnapshot, *, live: bool, table: str, full: bool
) -> dict[str, object]:
    """One window's `ib_position_snapshot` metadata: that window's numbers only, and with
    `full` (a one-window run) its positions table and column schema. A range run's
    windows carry the numbers only: each window is one stored event, and the tables would
    be most of its cost (README, "Windows, snapshots and backfills")."""
    metadata: dict[str, object] = {
        "dagster/row_count": snap.positions.height,
        "open_positions": snap.positions.filter(pl.col("position") != 0).height,
        "taken_at": timestamp(snap.taken_at),
        "snapshot_duration_s": round(snap.duration_s, 3),
        "source": "live snapshot" if live else "stored snapshot (reused)",
        "accounts": dg.MetadataValue.json(list(snap.accounts)),
        "table": dg.MetadataValue.path(table),
    }
    if full:
        metadata["positions"] = markdown_table(
            snap.positions,
            ["account", "symbol", "sec_type", "expiry", "strike", "right", "position"],
            empty="IB reports no positions (a complete, empty answer).",
        )
        metadata["dagster/column_schema"] = column_schema(schemas.IB_POSITION_SNAPSHOTS)
        if snap.positions.height:
            metadata["positions_per_account"] = per_account(snap.positions)
    return metadata


def latest_metadata(
    latest: pl.DataFrame, *, as_of: datetime, table: str, full: bool
) -> dict[str, object]:
    """One window's `delta_latest_positions` metadata: what Delta believed as of `as_of`
    (with `full`, the open positions' table and the column schema too)."""
    open_rows = latest.filter(pl.col("position") != 0)
    metadata: dict[str, object] = {
        "dagster/row_count": latest.height,
        "open_positions": open_rows.height,
        "as_of": timestamp(as_of),
        "table": dg.MetadataValue.path(table),
    }
    if full:
        metadata["positions"] = markdown_table(
            open_rows,
            ["account", "symbol", "sec_type", "expiry", "strike", "right", "position", "timestamp"],
            empty="Delta holds no open position as of this window.",
        )
        metadata["dagster/column_schema"] = column_schema(schemas.DELTA_LATEST_POSITIONS)
        if latest.height:
            metadata["positions_per_account"] = per_account(latest)
    return metadata


def judged_metadata(
    window: JudgedWindow, *, settings: ReconciliationSettings, table: str, full: bool
) -> dict[str, object]:
    """One window's `position_discrepancies` metadata (with `full`, the discrepancies'
    table and the column schema too); `judged_live` tells the alert sensor that this
    verdict is about now (a backfill's never pages)."""
    rows = window.rows
    metadata: dict[str, object] = {
        "dagster/row_count": rows.height,
        **{
            f"{t.value.lower()}_count": rows.filter(pl.col("type") == t.value).height
            for t in DiscrepancyType
        },
        "ib_open_positions": _open_in_scope(window.snapshot.positions, settings),
        "delta_open_positions": _open_in_scope(window.latest, settings),
        "resolved_in_flight_count": window.resolved_in_flight().height,
        "as_of": timestamp(window.snapshot.taken_at),
        # The second snapshot a critical candidate was confirmed by (none: not needed).
        "confirmed_at": (
            timestamp(window.confirming.taken_at)
            if window.confirming
            else "none: no critical candidate to confirm"
        ),
        "judged_live": window.live,
        "accounts_judged": dg.MetadataValue.json(list(window.accounts)),
        "settings": settings.describe(),
        "table": dg.MetadataValue.path(table),
    }
    if full:
        metadata["discrepancies"] = markdown_table(
            rows,
            ["severity", "type", "account", "symbol", "ib_position", "delta_position", "details"],
            empty="IB and Delta Lake agree: no discrepancies.",
        )
        metadata["dagster/column_schema"] = column_schema(schemas.POSITION_DISCREPANCIES)
    return metadata


def unjudged_sentence(window: UnjudgedWindow) -> str:
    """What to say of a window that was snapshotted and never judged, and what to do."""
    key = window_key(window.window_start)
    return (
        f"window {key} was snapshotted at {window.taken_at:%Y-%m-%d %H:%M:%S} UTC but never "
        f"judged: re-run it with `v6 reconcile --window {key}`"
    )


def unjudged_metadata(unjudged: list[UnjudgedWindow], *, lookback: timedelta) -> dict[str, object]:
    """The windows of the last `lookback` that were snapshotted and never judged, on the
    page of the window a live run judged: about now, as the lineage node is. Their
    missing discrepancy rows are not a verdict."""
    hours = lookback.total_seconds() / 3600
    return {
        "unjudged_window_count": len(unjudged),
        "unjudged_windows": dg.MetadataValue.md(
            "\n".join(f"- {unjudged_sentence(w)}" for w in unjudged[:MAX_TABLE_ROWS])
            + (
                f"\n\n… and {len(unjudged) - MAX_TABLE_ROWS} more."
                if len(unjudged) > MAX_TABLE_ROWS
                else ""
            )
            if unjudged
            else f"None: every window snapshotted in the last {hours:g} hours was judged."
        ),
    }


def _open_in_scope(frame: pl.DataFrame, settings: ReconciliationSettings) -> int:
    """How many of `frame`'s positions are open and in scope (plotted per window)."""
    rows = frame.filter(pl.col("position").abs() > settings.tolerance())
    scope = settings.scope()
    if scope is not None and "sec_type" in rows.columns:
        rows = rows.filter(pl.col("sec_type").is_null() | pl.col("sec_type").is_in(scope))
    return rows.height
