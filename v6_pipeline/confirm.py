"""Confirmation: a window's discrepancies, kept only where a second snapshot agrees.

A fill in flight makes a discrepancy that heals itself: IB already shows the close
while the streamer's row for it is still on its way to Delta (or the reverse). When a
live window has a critical candidate, the pipeline takes a second IB snapshot a few
seconds later and judges it against Delta as of that second snapshot; this module
combines the two judgments. Pure: two `reconcile()` results in, one out.

A key keeps its type only when the second judgment gives it the same type; otherwise
it is recorded as `RESOLVED_IN_FLIGHT` (severity `info`): visible in the table and the
metadata, never alerted. A discrepancy that appears only in the second judgment
belongs to a later window and is not reported here. `reconcile()` itself stays the
four-type classification of one snapshot.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from v6_pipeline.reconcile import Severity

RESOLVED_IN_FLIGHT = "RESOLVED_IN_FLIGHT"
INFO = "info"
_KEY = ["account", "conid"]


def confirm(first: pl.DataFrame, second: pl.DataFrame, *, confirmed_at: datetime) -> pl.DataFrame:
    """`first`'s rows, those `second` does not repeat (same key, same type) downgraded
    to RESOLVED_IN_FLIGHT; `confirmed_at` is the second snapshot's time, for the details.

    Both frames are `reconcile()` results (one row per key). The result has `first`'s
    schema, rows and order; quantities stay those of the first snapshot.
    """
    later = second.select(*_KEY, pl.col("type").alias("_second_type"))
    joined = first.join(later, on=_KEY, how="left", maintain_order="left")
    survives = pl.col("type") == pl.col("_second_type")
    when = confirmed_at.strftime("%H:%M:%S")
    note = pl.format(
        "{} did not survive the confirming snapshot ({}): {}",
        pl.col("type"),
        pl.when(pl.col("_second_type").is_null())
        .then(pl.lit(f"IB and Delta agreed at {when}"))
        .otherwise(pl.format(f"{{}} at {when}", pl.col("_second_type"))),
        pl.col("details"),
    )
    return joined.with_columns(
        type=pl.when(survives).then(pl.col("type")).otherwise(pl.lit(RESOLVED_IN_FLIGHT)),
        severity=pl.when(survives).then(pl.col("severity")).otherwise(pl.lit(INFO)),
        details=pl.when(survives).then(pl.col("details")).otherwise(note),
    ).select(first.columns)


def has_critical(rows: pl.DataFrame) -> bool:
    """Whether a judgment holds a candidate worth confirming (a critical row)."""
    return rows.filter(pl.col("severity") == Severity.CRITICAL.value).height > 0
