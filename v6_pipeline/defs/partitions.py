"""The 5-minute UTC windows every asset is partitioned by.

Dagster recommends at most ~100k partitions per asset and its UI slows near there; a
year of 5-minute windows is 105,120. So the first window is configurable
(`V6_PARTITIONS_START`, a UTC ISO time) and defaults to the first day of the previous
UTC month: between ~8,900 and ~17,900 keys, and stable for a month at a time.
Windows before the start stay in the lake; roll the start forward to keep the key
count low, back to backfill older windows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg

WINDOW = timedelta(minutes=5)
KEY_FORMAT = "%Y-%m-%d-%H:%M"
START_ENV = "V6_PARTITIONS_START"


def default_start(now: datetime) -> datetime:
    """The first day of the month before `now`'s, at 00:00 UTC."""
    first_of_month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first_of_month - timedelta(days=1)).replace(day=1)


def partitions_start(environ: Mapping[str, str] = os.environ) -> datetime:
    raw = environ.get(START_ENV, "")
    if raw and not raw.strip():
        raise ValueError(
            f"{START_ENV}={raw!r} is blank: unset it to start the windows on the first day of "
            "the previous month, or write a UTC time, e.g. 2026-11-01T00:00:00Z"
        )
    if not (raw := raw.strip()):
        return default_start(datetime.now(UTC))
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


def window_start(key: str) -> datetime:
    """The UTC start of the window named `key` (`2026-11-25-14:05`)."""
    return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=UTC)


def window_key(start: datetime) -> str:
    return start.astimezone(UTC).strftime(KEY_FORMAT)


def last_closed_window(now: datetime) -> datetime:
    """The start of the newest window that has ended by `now`."""
    now = now.astimezone(UTC)
    floor = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5)
    return floor - WINDOW


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
                f"window {key} is before the first partition ({window_key(first)}); set "
                f"{START_ENV} earlier to reach it"
            )
        raise ValueError(f"window {key} has not closed yet: a window is judged after it ends")
    return key
