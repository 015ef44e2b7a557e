"""`stream_liveness`, exhaustively (pure), and the `stream_status` rows it reads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from v6_pipeline.stream.liveness import REQUIRED, stream_liveness
from v6_pipeline.stream.status import (
    STATUS_COLUMNS,
    StreamStatus,
    read_stream_status,
    write_status,
)

AS_OF = datetime(2026, 3, 2, 14, 35, 7, tzinfo=UTC)
DEAD = timedelta(seconds=120)


def beat(age_s: float, **fields: Any) -> StreamStatus:
    """A heartbeat `age_s` seconds before AS_OF, of a connected stream (unless told)."""
    at = AS_OF - timedelta(seconds=age_s)
    values: dict[str, Any] = {
        "stream_id": "607@127.0.0.1:4002",
        "heartbeat_at": at,
        "connected": True,
        "since": at - timedelta(hours=1),
        "last_event_at": at - timedelta(minutes=3),
        "last_write_at": at - timedelta(minutes=3),
        "rows_written": 12,
        "events": 40,
        "pending": 0,
        "reconnects": 1,
        "last_error": None,
        "started_at": at - timedelta(hours=2),
        "hostname": "box",
        "pid": 4242,
    }
    values.update(fields)
    return StreamStatus(**values)


def frame(*beats: StreamStatus) -> pl.DataFrame:
    return pl.DataFrame([dataclasses.asdict(b) for b in beats], schema=STATUS_COLUMNS)


@pytest.mark.parametrize(
    ("beats", "passed", "words"),
    [
        ([], False, "No heartbeat from `v6 stream`"),
        ([beat(5)], True, "is alive"),
        ([beat(0)], True, "is alive"),
        ([beat(120)], True, "is alive"),  # exactly at the limit still counts
        ([beat(120.001)], False, "over the limit of 120 s"),
        ([beat(3600)], False, "60 min before"),
        ([beat(3600), beat(30)], True, "is alive"),  # the newest counts
        ([beat(30), beat(3600)], True, "is alive"),  # in any order
        ([beat(-5)], False, "No heartbeat"),  # after as_of: not known then
        ([beat(500), beat(-5)], False, "over the limit"),
        # alive but not following IB
        ([beat(5, connected=False, since=AS_OF - timedelta(seconds=60))], True, "reconnecting"),
        (
            [beat(5, connected=False, since=AS_OF - timedelta(seconds=121), last_error="326")],
            False,
            "has not followed IB's position events for 121 s",
        ),
        ([beat(5, connected=False, since=AS_OF - timedelta(days=3))], False, "3.0 days"),
    ],
)
def test_the_newest_heartbeat_at_as_of_decides(
    beats: list[StreamStatus], passed: bool, words: str
) -> None:
    result = stream_liveness(frame(*beats), as_of=AS_OF, dead_after=DEAD)
    assert result.passed is passed
    assert words in result.description


def test_a_failure_says_what_to_do_and_how_to_disable_the_check() -> None:
    dead = stream_liveness(frame(beat(600)), as_of=AS_OF, dead_after=DEAD)
    assert "restart it" in dead.description
    assert "V6_STREAM_DEAD_AFTER_S empty" in dead.description
    assert "2026-03-02 14:25:07 UTC" in dead.description
    away = stream_liveness(
        frame(beat(5, connected=False, since=AS_OF - timedelta(hours=3), last_error="boom")),
        as_of=AS_OF,
        dead_after=DEAD,
    )
    assert "last error: boom" in away.description
    assert "V6_STREAM_CLIENT_ID" in away.description


def test_metadata_is_plain_values() -> None:
    newest = beat(30)
    result = stream_liveness(frame(beat(90), newest), as_of=AS_OF, dead_after=DEAD)
    assert result.metadata() == {
        "as_of": AS_OF.isoformat(),
        "dead_after_s": 120.0,
        "newest_heartbeat": newest.heartbeat_at.isoformat(),
        "heartbeat_age_s": 30.0,
        "stream_id": "607@127.0.0.1:4002",
        "connected": True,
        "connected_changed_at": newest.since.isoformat(),
        "last_event_at": newest.last_event_at.isoformat(),  # type: ignore[union-attr]
        "last_write_at": newest.last_write_at.isoformat(),  # type: ignore[union-attr]
        "rows_written": 12,
    }
    empty = stream_liveness(frame(), as_of=AS_OF, dead_after=DEAD)
    assert empty.metadata() == {"as_of": AS_OF.isoformat(), "dead_after_s": 120.0}
    assert (empty.newest_heartbeat, empty.age) == (None, None)


def test_several_streams_the_newest_heartbeat_speaks() -> None:
    other = beat(10, stream_id="608@10.0.0.2:4001", connected=False, since=AS_OF)
    result = stream_liveness(frame(beat(500), other), as_of=AS_OF, dead_after=DEAD)
    assert result.passed
    assert result.stream_id == "608@10.0.0.2:4001"


@pytest.mark.parametrize(
    ("as_of", "dead_after", "status", "message"),
    [
        (AS_OF.replace(tzinfo=None), DEAD, frame(), "timezone-aware"),
        (AS_OF, timedelta(0), frame(), "positive"),
        (AS_OF, timedelta(seconds=-1), frame(), "positive"),
        (AS_OF, DEAD, frame().drop("since", "connected"), "connected, since"),
    ],
)
def test_bad_arguments_are_errors_not_verdicts(
    as_of: datetime, dead_after: timedelta, status: pl.DataFrame, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stream_liveness(status, as_of=as_of, dead_after=dead_after)


def test_only_the_required_columns_are_needed() -> None:
    minimal = frame(beat(5)).select(REQUIRED)
    result = stream_liveness(minimal, as_of=AS_OF, dead_after=DEAD)
    assert result.passed
    assert result.rows_written is None


# --- the table --------------------------------------------------------------------------


def test_status_rows_round_trip_and_read_by_time(tmp_path: Path) -> None:
    assert read_stream_status(tmp_path).schema == STATUS_COLUMNS  # no table yet: empty
    beats = [beat(300), beat(200, last_error="x"), beat(100)]
    for b in reversed(beats):
        write_status(tmp_path, b)
    everything = read_stream_status(tmp_path)
    assert everything.schema == STATUS_COLUMNS
    assert everything.to_dicts() == [dataclasses.asdict(b) for b in beats]  # oldest first
    window = read_stream_status(tmp_path, since=beats[1].heartbeat_at, until=beats[1].heartbeat_at)
    assert window["last_error"].to_list() == ["x"]
    judged = stream_liveness(
        read_stream_status(tmp_path, until=AS_OF), as_of=AS_OF, dead_after=DEAD
    )
    assert judged.passed
    assert judged.age == timedelta(seconds=100)
