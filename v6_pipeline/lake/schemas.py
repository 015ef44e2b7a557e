"""The schemas of every Delta table the project reads or writes, in one place.

Timestamps are UTC with microsecond precision everywhere.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

UTC_US = pa.timestamp("us", tz="UTC")

# A contract's terms as IB describes it, in every table that holds positions.
CONTRACT_TERMS = [
    pa.field("sec_type", pa.string()),
    pa.field("right", pa.string()),
    pa.field("strike", pa.float64()),
    pa.field("expiry", pa.string()),
    pa.field("multiplier", pa.string()),
    pa.field("currency", pa.string()),
]

# The event log the streamer writes: one row per position change.
POSITION_UPDATES = pa.schema(
    [
        pa.field("account", pa.string()),
        pa.field("conid", pa.int64(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        *CONTRACT_TERMS,
        pa.field("position", pa.float64(), nullable=False),
        pa.field("avg_cost", pa.float64()),
        pa.field("timestamp", UTC_US, nullable=False),
    ]
)
POSITION_UPDATES_PARTITION_BY = ["symbol"]
# What a legacy writer's table must have; `account` and `sec_type` may be absent.
POSITION_UPDATES_REQUIRED = ("conid", "symbol", "position", "timestamp")

# One row per IB position per 5-minute window, as IB reported it.
IB_POSITION_SNAPSHOTS = pa.schema(
    [
        pa.field("window_start", UTC_US, nullable=False),
        pa.field("taken_at", UTC_US, nullable=False),
        pa.field("account", pa.string(), nullable=False),
        pa.field("conid", pa.int64(), nullable=False),
        pa.field("symbol", pa.string()),
        *CONTRACT_TERMS,
        pa.field("position", pa.float64(), nullable=False),
        pa.field("avg_cost", pa.float64()),
    ]
)

# One row per discrepancy per window; `reconcile()` returns these columns without
# `window_start`.
POSITION_DISCREPANCIES = pa.schema(
    [
        pa.field("window_start", UTC_US, nullable=False),
        pa.field("as_of", UTC_US, nullable=False),
        pa.field("account", pa.string(), nullable=False),
        pa.field("conid", pa.int64(), nullable=False),
        pa.field("symbol", pa.string()),
        pa.field("sec_type", pa.string()),
        pa.field("type", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("ib_position", pa.float64(), nullable=False),
        pa.field("delta_position", pa.float64()),
        pa.field("delta_updated_at", UTC_US),
        pa.field("details", pa.string(), nullable=False),
    ]
)

# One row per stored IB snapshot, written after its rows: the window's commit marker.
# A window with rows here was snapshotted (maybe with zero positions); without, never.
IB_SNAPSHOT_LOG = pa.schema(
    [
        pa.field("window_start", UTC_US, nullable=False),
        pa.field("taken_at", UTC_US, nullable=False),
        pa.field("position_count", pa.int64(), nullable=False),
        pa.field("accounts", pa.string(), nullable=False),  # managed accounts, comma-separated
        pa.field("duration_s", pa.float64(), nullable=False),
    ]
)

# The per-window tables are partitioned by the UTC date of `window_start` (not by window:
# 288 windows a day would make tiny files); `write_window` adds this column.
WINDOW_DATE = pa.field("window_date", pa.date32(), nullable=False)
WINDOW_PARTITION_BY = [WINDOW_DATE.name]

# The Delta latest positions each window was judged against: `read_latest` as of the
# window's snapshot (`as_of` = its `taken_at`), one row per (account, conid).
DELTA_LATEST_POSITIONS = pa.schema(
    [
        pa.field("window_start", UTC_US, nullable=False),
        pa.field("as_of", UTC_US, nullable=False),
        *(
            field.with_nullable(False) if field.name == "account" else field
            for field in POSITION_UPDATES
        ),
    ]
)

# `position_judgment_log`: one row per judged window, written last (its commit marker:
# a window without one was never judged, whatever else it has).
JUDGMENT_LOG = pa.schema(
    [
        pa.field("window_start", UTC_US, nullable=False),
        pa.field("as_of", UTC_US, nullable=False),  # the judged snapshot's taken_at
        pa.field("judged_at", UTC_US, nullable=False),
        pa.field("discrepancy_count", pa.int64(), nullable=False),
        pa.field("naked_count", pa.int64(), nullable=False),
        pa.field("confirmed_at", UTC_US),  # the confirming snapshot's, if any
        # JSON list of {"check", "severity", "description"}: the checks that failed.
        pa.field("failed_checks", pa.string(), nullable=False),
        pa.field("run_id", pa.string()),  # the Dagster run that recorded the judgment
    ]
)

# `read_latest`'s checkpoint (one small Delta table per `position_updates`): the rows it
# keeps, its state then its tail, with their write order `_seq`. What describes them (the
# table's version, the cutoff, the files seen) is in the parquet file's own metadata.
CHECKPOINT = pa.schema(
    [
        *(field.with_nullable(True) for field in POSITION_UPDATES),
        pa.field("_seq", pa.int64()),
        pa.field("_tie", pa.float64()),  # another quantity at the row's timestamp (ambiguous)
    ]
)


# `alert_log`: one row when an alert is raised, and one per sink and tick that tried it
# (`alerts/log.py`).
ALERT_LOG = pa.schema(
    [
        pa.field("sent_at", UTC_US, nullable=False),
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

# `stream_status`: one row per heartbeat of `v6 stream` (`stream/status.py`). Columns
# added since the first version are nullable, added to an older table on its next append.
STREAM_STATUS = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("heartbeat_at", UTC_US, nullable=False),
        pa.field("connected", pa.bool_(), nullable=False),  # following IB's position events
        pa.field("since", UTC_US, nullable=False),  # when `connected` last changed
        pa.field("last_event_at", UTC_US),  # the newest position message received
        pa.field("last_write_at", UTC_US),  # the newest commit to position_updates
        pa.field("rows_written", pa.int64(), nullable=False),  # since `started_at`
        pa.field("events", pa.int64(), nullable=False),  # messages received since `started_at`
        pa.field("pending", pa.int64(), nullable=False),  # rows waiting for their commit
        pa.field("reconnects", pa.int64(), nullable=False),
        pa.field("last_error", pa.string()),
        pa.field("started_at", UTC_US, nullable=False),
        pa.field("hostname", pa.string(), nullable=False),
        pa.field("pid", pa.int64(), nullable=False),
        # Whether changes reach Delta, not only whether the process runs:
        pa.field("oldest_pending_at", UTC_US),  # the oldest row waiting for its commit
        pa.field("dead_letters", pa.int64()),  # messages set aside since `started_at`
        pa.field("last_dead_letter_at", UTC_US),
        # A change was set aside then, and no complete snapshot has been written since
        pa.field("unrepaired_since", UTC_US),
    ]
)

# `stream_dead_letters`: the position messages `v6 stream` set aside, one row each
# (`stream/deadletters.py`).
STREAM_DEAD_LETTERS = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("set_aside_at", UTC_US, nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # a `Kind`
        pa.field("reason", pa.string(), nullable=False),
        pa.field("received_at", UTC_US),  # the message's arrival (a snapshot's: its time)
        pa.field("account", pa.string()),
        pa.field("conid", pa.string()),  # as received: it may not fit int64
        pa.field("symbol", pa.string()),
        pa.field("position", pa.float64()),
        pa.field("raw", pa.string(), nullable=False),  # every field as received
    ]
)


def polars_schema(schema: pa.Schema, *, drop: tuple[str, ...] = ()) -> pl.Schema:
    """The polars equivalent of a pyarrow table schema, without the `drop` columns."""
    empty = pl.from_arrow(schema.empty_table())
    assert isinstance(empty, pl.DataFrame)
    return pl.Schema({k: v for k, v in empty.schema.items() if k not in drop})
