"""Times at the lake's edge: timezone-aware in, UTC microseconds stored."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; a naive time is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)
