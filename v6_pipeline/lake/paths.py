"""Where the tables live under the lake directory (a local path or an object-store URI)."""

from __future__ import annotations

import os

from v6_pipeline.settings import LAKE_DIR

POSITION_UPDATES = "position_updates"
IB_POSITION_SNAPSHOTS = "ib_position_snapshots"
IB_SNAPSHOT_LOG = "ib_snapshot_log"
# The second snapshot a live window with a critical candidate takes (same schemas).
IB_CONFIRMING_SNAPSHOTS = "ib_confirming_snapshots"
IB_CONFIRMING_SNAPSHOT_LOG = "ib_confirming_snapshot_log"
POSITION_DISCREPANCIES = "position_discrepancies"
JUDGMENT_LOG = "position_judgment_log"  # one row per judged window, written last
ALERT_LOG = "alert_log"  # written by the alert sensors
STREAM_STATUS = "stream_status"  # written by `v6 stream`
STREAM_DEAD_LETTERS = "stream_dead_letters"  # messages `v6 stream` set aside
DELTA_LATEST_POSITIONS = "delta_latest_positions"
# Derived state the lake keeps for itself (read_latest checkpoints), apart from the tables.
CHECKPOINTS = "_v6_checkpoints"

DEFAULT_LAKE_DIR = LAKE_DIR.default


def default_lake_dir() -> str:
    """`$V6_LAKE_DIR` (trimmed; a blank value refused), else `data/lake`."""
    return LAKE_DIR.read(os.environ)


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def table_uri(lake_dir: str | os.PathLike[str], name: str) -> str:
    """The URI of table `name` under `lake_dir`; string joins keep `s3://...` roots intact."""
    root = os.fspath(lake_dir)
    if is_local(root):
        return os.path.abspath(os.path.join(root.removeprefix("file://"), name))
    return f"{root.rstrip('/')}/{name}"


def checkpoint_uri(position_updates_uri: str) -> str:
    """The checkpoint table of a `position_updates` table: a sibling under `_v6_checkpoints/`."""
    parent, _, name = position_updates_uri.rstrip("/").rpartition("/")
    return f"{parent}/{CHECKPOINTS}/{name}"
