"""The 5-minute UTC windows as plain arithmetic: their length and their keys.

Pure (no Dagster): the judgment and the quiet-hours retry use it, and so can the
Dagster partitions built on it (`defs/partitions.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WINDOW = timedelta(minutes=5)
KEY_FORMAT = "%Y-%m-%d-%H:%M"


def window_key(start: datetime) -> str:
    """The key of the window starting at `start` (`2026-11-25-14:05`)."""
    return start.astimezone(UTC).strftime(KEY_FORMAT)


def window_start(key: str) -> datetime:
    """The UTC start of the window named `key` (`2026-11-25-14:05`)."""
    return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=UTC)


def last_closed_window(now: datetime) -> datetime:
    """The start of the newest window that has ended by `now`."""
    now = now.astimezone(UTC)
    floor = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5)
    return floor - WINDOW
