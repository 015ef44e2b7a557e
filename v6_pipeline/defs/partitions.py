"""The 5-minute UTC windows every asset is partitioned by.

The first window is the first one the pipeline snapshotted (the oldest row of
`ib_snapshot_log`), so the fill a lineage node shows is the share of its own life the
pipeline judged: a healthy pipeline reads near 100%, and every missing window is one it
missed. Before the first snapshot it is the newest closed window. `V6_PARTITIONS_START`
(a UTC ISO time) overrides it: earlier to show older windows, later to keep the key
count low (Dagster recommends at most ~100k partitions per asset; a year of 5-minute
windows is 105,120).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import dagster as dg

# The windows' arithmetic is pure (`windowing`); Dagster's partitions are built on it.
from v6_pipeline.windowing import KEY_FORMAT, WINDOW, last_closed_window, window_key, window_start

__all__ = [
    "RANGE_TAGS",
    "START_ENV",
    "WINDOW",
    "is_range_run",
    "last_closed_window",
    "partitions_start",
    "validate_key",
    "window_key",
    "window_partitions",
    "window_start",
]

START_ENV = "V6_PARTITIONS_START"
# The tags Dagster puts on a run of a range or a backfill: a run of past windows.
RANGE_TAGS = frozenset({"dagster/backfill", "dagster/asset_partition_range_start"})
_log = logging.getLogger(__name__)


def is_range_run(tags: Mapping[str, str]) -> bool:
    """Whether a run with `tags` judged a range or a backfill (never a live window)."""
    return bool(RANGE_TAGS & set(tags))


def partitions_start(
    environ: Mapping[str, str] = os.environ,
    *,
    first_run: Callable[[], datetime | None],
    now: datetime | None = None,
) -> datetime:
    """`V6_PARTITIONS_START`, else the first window snapshotted (`first_run()`), else the
    newest closed window. A lake that cannot be read at load time is said in the log and
    costs only the fill: the windows then start at the newest closed one."""
    raw = environ.get(START_ENV, "")
    if raw and not raw.strip():
        raise ValueError(
            f"{START_ENV}={raw!r} is blank: unset it to start the windows at the first one "
            "the pipeline snapshotted, or write a UTC time, e.g. 2026-11-01T00:00:00Z"
        )
    if not (raw := raw.strip()):
        newest = last_closed_window(now or datetime.now(UTC))
        try:
            first = first_run()
        except Exception as exc:  # any storage failure: the UI still loads
            _log.warning(
                "cannot read when the pipeline first ran (%s): the windows start at %s; set "
                "%s to fix them",
                exc,
                window_key(newest),
                START_ENV,
            )
            return newest
        return newest if first is None else min(first, newest)
    try:
        start = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{START_ENV}={raw!r} is not an ISO time; write e.g. 2026-11-01T00:00:00Z"
        ) from exc
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start = start.astimezone(UTC)
    if start.minute % 5 or start.second or start.microsecond:
        raise ValueError(f"{START_ENV}={raw!r} must fall on a 5-minute boundary")
    return start


def window_partitions(start: datetime) -> dg.TimeWindowPartitionsDefinition:
    """The 5-minute UTC windows from `start` (built when the code location loads)."""
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="*/5 * * * *", start=start, fmt=KEY_FORMAT, timezone="UTC"
    )


def validate_key(key: str, partitions: dg.TimeWindowPartitionsDefinition) -> str:
    """`key`, if it names a window of `partitions`; else a ValueError that says why."""
    try:
        start = window_start(key)
    except ValueError as exc:
        raise ValueError(
            f"{key!r} is not a window key; write YYYY-MM-DD-HH:MM in UTC, on a 5-minute "
            "boundary, e.g. 2026-11-25-14:05"
        ) from exc
    if start.minute % 5:
        raise ValueError(f"window {key} is not on a 5-minute boundary (:00, :05, ... :55)")
    if not partitions.has_partition_key(key):
        first = partitions.start.astimezone(UTC)
        if start < first:
            raise ValueError(
                f"window {key} is before the first window ({window_key(first)}), the first "
                f"the pipeline snapshotted unless {START_ENV} says otherwise; set "
                f"{START_ENV} earlier to reach it"
            )
        raise ValueError(f"window {key} has not closed yet: a window is judged after it ends")
    return key
