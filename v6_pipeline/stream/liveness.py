"""Is the position stream alive at a window's `as_of`? A pure judgement of heartbeat rows.

The Dagster WARN check `position_stream_is_alive` wraps `stream_liveness`: a stream that
died is then visible and alertable, and not confused with a book that simply did not
change. Only heartbeats at or before `as_of` count, so a past window is judged by what
was known then, the same on every re-run.

Alive means that the stream's changes reach Delta, not only that its process runs. Each
stream process (its own `stream_id`) is judged by its newest heartbeat, and fails when:

- that heartbeat is older than `dead_after` (down or stuck);
- a row has waited for its commit longer than that (writes failing: the backlog does
  not drain);
- a message it set aside (a dead letter) has not been repaired by a complete snapshot
  for longer than that;
- it has not been following IB's events for longer than that (a gateway that is down,
  a client id in use).

The check passes when one process whose heartbeat is fresh passes: a second process
started by mistake (refused by the gateway for its client id) neither hides a dead
stream nor makes the verdict flap. The others that fail are named in the description.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

REQUIRED = ("stream_id", "heartbeat_at", "connected", "since")
_DISABLE = (
    "set V6_STREAM_DEAD_AFTER_S empty to disable this check if position_updates is written "
    "by something else"
)


@dataclass(frozen=True, slots=True)
class StreamLiveness:
    passed: bool
    description: str  # a sentence for the person on call
    as_of: datetime
    dead_after: timedelta
    newest_heartbeat: datetime | None = None
    age: timedelta | None = None  # as_of - newest_heartbeat
    stream_id: str | None = None
    connected: bool | None = None
    since: datetime | None = None
    last_event_at: datetime | None = None
    last_write_at: datetime | None = None
    rows_written: int | None = None
    last_error: str | None = None
    pending: int | None = None
    oldest_pending_at: datetime | None = None
    dead_letters: int | None = None
    last_dead_letter_at: datetime | None = None
    unrepaired_since: datetime | None = None
    streams: int | None = None  # stream processes with a fresh heartbeat at as_of

    def metadata(self) -> dict[str, str | float | int | bool]:
        """The known fields as plain values (times in ISO 8601, durations in seconds)."""
        values: dict[str, Any] = {
            "as_of": self.as_of,
            "dead_after_s": self.dead_after,
            "newest_heartbeat": self.newest_heartbeat,
            "heartbeat_age_s": self.age,
            "stream_id": self.stream_id,
            "connected": self.connected,
            "connected_changed_at": self.since,
            "last_event_at": self.last_event_at,
            "last_write_at": self.last_write_at,
            "rows_written": self.rows_written,
            "last_error": self.last_error,
            "pending": self.pending,
            "oldest_pending_at": self.oldest_pending_at,
            "dead_letters": self.dead_letters,
            "last_dead_letter_at": self.last_dead_letter_at,
            "unrepaired_since": self.unrepaired_since,
            "streams_running": self.streams,
        }
        return {name: _plain(value) for name, value in values.items() if value is not None}


def stream_liveness(
    status: pl.DataFrame, *, as_of: datetime, dead_after: timedelta
) -> StreamLiveness:
    """Judge the `stream_status` rows (any order, any streams) at `as_of`."""
    if as_of.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware (UTC), got {as_of.isoformat()}")
    if dead_after <= timedelta(0):
        raise ValueError(f"dead_after must be positive, got {dead_after}")
    missing = [c for c in REQUIRED if c not in status.columns]
    if missing:
        raise ValueError(f"stream_status rows lack the column(s) {', '.join(missing)}")

    known = status.filter(pl.col("heartbeat_at") <= as_of)
    if known.height == 0:
        return StreamLiveness(
            False,
            f"No heartbeat from `v6 stream` in stream_status up to {_time(as_of)}: the "
            "position stream was not running against this lake, so fills reach "
            f"position_updates only if something else writes them. Start `v6 stream`, or "
            f"{_DISABLE}.",
            as_of,
            dead_after,
        )
    newest = (
        known.sort("heartbeat_at", maintain_order=True)
        .group_by("stream_id", maintain_order=True)
        .last()
    )
    judged = [_judge(row, as_of, dead_after) for row in newest.iter_rows(named=True)]
    running = [j for j in judged if j.age is not None and j.age <= dead_after]
    passing = [j for j in judged if j.passed]
    # The process that speaks: one that passes, else one still heartbeating, else the
    # newest; among them the one following IB, then the newest heartbeat.
    best = max(
        passing or running or judged,
        key=lambda j: (bool(j.connected), j.newest_heartbeat or as_of),
    )
    others = [j for j in running if j is not best and not j.passed]
    description = best.description
    if others:
        description += f" Also heartbeating here: {others[0].description}"
        if len(others) > 1:
            description += f" (and {len(others) - 1} more stream process(es) failing)"
    return dataclasses.replace(best, description=description, streams=len(running))


def _judge(row: dict[str, Any], as_of: datetime, dead_after: timedelta) -> StreamLiveness:
    """One stream process, by its newest heartbeat `row`."""
    newest: datetime = row["heartbeat_at"]
    age = as_of - newest
    facts = StreamLiveness(
        True,
        "",
        as_of,
        dead_after,
        newest_heartbeat=newest,
        age=age,
        stream_id=row["stream_id"],
        connected=row["connected"],
        since=row["since"],
        last_event_at=row.get("last_event_at"),
        last_write_at=row.get("last_write_at"),
        rows_written=row.get("rows_written"),
        last_error=row.get("last_error"),
        pending=row.get("pending"),
        oldest_pending_at=row.get("oldest_pending_at"),
        dead_letters=row.get("dead_letters"),
        last_dead_letter_at=row.get("last_dead_letter_at"),
        unrepaired_since=row.get("unrepaired_since"),
    )
    stream = f"The position stream {row['stream_id']}"
    error = row.get("last_error")
    if age > dead_after:
        return _judged(
            facts,
            False,
            f"{stream} last sent a heartbeat at {_time(newest)}, {_duration(age)} before "
            f"{_time(as_of)}, over the limit of {_duration(dead_after)}: it is down or stuck, "
            "and fills since then reach position_updates only when it runs again (its "
            "reconnect snapshot repairs them). Check its service and log, and restart it; "
            f"or {_DISABLE}.",
        )
    waiting: datetime | None = row.get("oldest_pending_at")
    if waiting is not None and as_of - waiting > dead_after:
        return _judged(
            facts,
            False,
            f"{stream} is running, but its changes are not reaching position_updates: "
            f"{_rows(row.get('pending'))} waited for their commit since "
            f"{_time(waiting)}, {_duration(as_of - waiting)} before {_time(as_of)}, over "
            f"the limit of {_duration(dead_after)}"
            + (f"; last error: {error}" if error else "")
            + ". Check that the lake (V6_LAKE_DIR) is writable, and the stream's log; the "
            "rows are kept in memory and written once it is (past 200,000 the stream exits, "
            "and its restart snapshot repairs them).",
        )
    unrepaired: datetime | None = row.get("unrepaired_since")
    if unrepaired is not None and as_of - unrepaired > dead_after:
        newest_letter: datetime | None = row.get("last_dead_letter_at")
        return _judged(
            facts,
            False,
            f"{stream} is running, but since {_time(unrepaired)} ({_duration(as_of - unrepaired)} "
            f"before {_time(as_of)}, over the limit of {_duration(dead_after)}) it has set "
            f"aside position messages it could not write ({row.get('dead_letters') or 'some'} "
            "since it started"
            + (f", the newest at {_time(newest_letter)}" if newest_letter else "")
            + ") and has not brought position_updates to a complete IB snapshot since: "
            "changes may be missing from Delta. Read their reasons in the "
            "stream_dead_letters table and the stream's log; a complete snapshot it can "
            "write (it takes one after each, or restart it) repairs them.",
        )
    away = as_of - row["since"]
    if not row["connected"] and away > dead_after:
        return _judged(
            facts,
            False,
            f"{stream} is running but has not followed IB's position events for "
            f"{_duration(away)} (since {_time(row['since'])})"
            + (f"; last error: {error}" if error else "")
            + ". Fills are not reaching position_updates: check the gateway it connects to "
            "(V6_IB_HOST, V6_IB_PORT) and that V6_STREAM_CLIENT_ID is not in use.",
        )
    if row["connected"]:
        state = f"following IB's position events since {_time(row['since'])}"
    else:
        state = f"reconnecting to IB since {_time(row['since'])}, within the limit"
    if unrepaired is not None:
        state += (
            f", repairing with a fresh snapshot the message(s) set aside since {_time(unrepaired)}"
        )
    return _judged(
        facts,
        True,
        f"{stream} is alive: its newest heartbeat is {_duration(age)} old at "
        f"{_time(as_of)}, and it is {state}.",
    )


def _rows(count: int | None) -> str:
    return f"{count} row(s) have" if count else "rows have"


def _judged(facts: StreamLiveness, passed: bool, description: str) -> StreamLiveness:
    return dataclasses.replace(facts, passed=passed, description=description)


def _plain(value: object) -> str | float | int | bool:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    assert isinstance(value, str | float | int | bool)
    return value


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 600:
        return f"{seconds:.4g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
