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
        "pending": 0,
        "dead_letters": 0,
        "streams_running": 1,
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


# --- changes reaching Delta, not only a running process (issue #20) -----------------------


@pytest.mark.parametrize(
    ("fields", "passed", "words"),
    [
        # writes failing: the backlog does not drain, while heartbeats stay fresh
        (
            {"pending": 53, "oldest_pending_at": AS_OF - timedelta(seconds=121), "last_error": "x"},
            False,
            "53 row(s) have waited for their commit since 2026-03-02 14:33:06 UTC, 121 s",
        ),
        ({"pending": 53, "oldest_pending_at": AS_OF - timedelta(seconds=119)}, True, "is alive"),
        # a dead letter repaired by no complete snapshot
        (
            {
                "dead_letters": 1,
                "last_dead_letter_at": AS_OF - timedelta(seconds=200),
                "unrepaired_since": AS_OF - timedelta(seconds=200),
            },
            False,
            "stream_dead_letters",
        ),
        (
            {"dead_letters": 1, "unrepaired_since": AS_OF - timedelta(seconds=10)},
            True,
            "repairing with a fresh snapshot",
        ),
        # set aside long ago, repaired since: only the count remains
        ({"dead_letters": 4, "last_dead_letter_at": AS_OF - timedelta(hours=1)}, True, "alive"),
    ],
)
def test_changes_that_do_not_reach_delta_fail_the_check(
    fields: dict[str, Any], passed: bool, words: str
) -> None:
    result = stream_liveness(frame(beat(5, **fields)), as_of=AS_OF, dead_after=DEAD)
    assert result.passed is passed, result.description
    assert words in result.description


def test_a_backlog_failure_says_what_to_check() -> None:
    stuck = beat(
        5, pending=7, oldest_pending_at=AS_OF - timedelta(minutes=5), last_error="OSError: full"
    )
    result = stream_liveness(frame(stuck), as_of=AS_OF, dead_after=DEAD)
    assert "not reaching position_updates" in result.description
    assert "last error: OSError: full" in result.description
    assert "V6_LAKE_DIR" in result.description
    assert result.metadata()["oldest_pending_at"] == stuck.oldest_pending_at.isoformat()  # type: ignore[union-attr]


A = "607@127.0.0.1:4002/box:1/aaaaaa"
B = "607@127.0.0.1:4002/box:2/bbbbbb"


def test_a_second_process_on_one_client_id_does_not_make_it_flap() -> None:
    """Two processes, one following IB and one refused its client id, heartbeat in turn:
    whichever wrote last, the verdict is the following one's, and names the other."""
    refused = {"connected": False, "since": AS_OF - timedelta(minutes=10), "last_error": "326"}
    for first_age, second_age in ((1, 2), (2, 1)):
        beats = frame(beat(first_age, stream_id=A), beat(second_age, stream_id=B, **refused))
        result = stream_liveness(beats, as_of=AS_OF, dead_after=DEAD)
        assert result.passed
        assert result.stream_id == A
        assert result.streams == 2
        assert f"Also heartbeating here: The position stream {B} is running but" in (
            result.description
        )


def test_a_dead_process_is_not_hidden_by_an_older_one_nor_by_a_refused_one() -> None:
    refused = {"connected": False, "since": AS_OF - timedelta(minutes=10), "last_error": "326"}
    result = stream_liveness(
        frame(beat(600, stream_id=A), beat(5, stream_id=B, **refused)), as_of=AS_OF, dead_after=DEAD
    )
    assert not result.passed
    assert result.stream_id == B  # still heartbeating: the one to look at
    assert "last error: 326" in result.description
    gone = stream_liveness(
        frame(beat(900, stream_id=A), beat(600, stream_id=B)), as_of=AS_OF, dead_after=DEAD
    )
    assert not gone.passed
    assert gone.stream_id == B  # the newest heartbeat
    assert gone.streams == 0


def test_status_rows_of_an_older_table_read_with_the_new_columns_null(tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from v6_pipeline.lake.schemas import STREAM_STATUS

    first = STREAM_STATUS.get_field_index("oldest_pending_at")
    old_schema = pa.schema(list(STREAM_STATUS)[:first])  # the table as first released
    old = {k: v for k, v in dataclasses.asdict(beat(60)).items() if k in old_schema.names}
    write_deltalake(str(tmp_path / "stream_status"), pa.Table.from_pylist([old], schema=old_schema))
    write_status(tmp_path, beat(30, pending=2, oldest_pending_at=AS_OF - timedelta(seconds=40)))
    rows = read_stream_status(tmp_path)
    assert rows.schema == STATUS_COLUMNS
    assert rows["oldest_pending_at"].to_list() == [None, AS_OF - timedelta(seconds=40)]
    assert rows["dead_letters"].to_list() == [None, 0]
