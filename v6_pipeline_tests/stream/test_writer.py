"""The batch writer against real Delta tables: batches bounded by time and size, a failing
lake retried without losing a row, a bounded backlog, and replays that write nothing twice."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from v6_pipeline.lake import Lake
from v6_pipeline.lake.errors import LakeSchemaError
from v6_pipeline.stream.updates import PositionUpdate, update
from v6_pipeline.stream.writer import BacklogFullError, BatchWriter
from v6_pipeline_tests.stream.support import all_rows


def rows(n: int, *, first_conid: int = 1) -> list[PositionUpdate]:
    now = datetime.now(UTC)
    return [
        update(
            account="DU111",
            conid=first_conid + i,
            symbol="SPY",
            sec_type="OPT",
            right="C",
            strike=600.0,
            expiry="20270115",
            multiplier="100",
            currency="USD",
            position=float(i + 1),
            avg_cost=10.0,
            timestamp=now + timedelta(microseconds=i),
        )
        for i in range(n)
    ]


class Commits:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, batch: Sequence[PositionUpdate], at: datetime) -> None:
        self.batches.append(len(batch))


def version(lake_dir: Path) -> int:
    return DeltaTable(str(lake_dir / "position_updates")).version()


def test_changes_close_in_time_share_one_commit(lake_dir: Path) -> None:
    commits = Commits()

    async def scenario() -> None:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=0.5, on_commit=commits)
        task = asyncio.create_task(writer.run())
        for row in rows(4):
            writer.add([row])
            await asyncio.sleep(0.05)
        while not commits.batches:
            await asyncio.sleep(0.02)
        assert await writer.close(5, task) == 0

    before = version(lake_dir)
    asyncio.run(scenario())
    assert commits.batches == [4]
    assert version(lake_dir) == before + 1
    assert all_rows(lake_dir).height == 4


def test_a_full_batch_is_committed_without_waiting(lake_dir: Path) -> None:
    commits = Commits()

    async def scenario() -> None:
        writer = BatchWriter(
            Lake(lake_dir).append_position_updates, flush_s=60, batch_rows=10, on_commit=commits
        )
        task = asyncio.create_task(writer.run())
        writer.add(rows(25))
        async with asyncio.timeout(20):
            while sum(commits.batches) < 20:
                await asyncio.sleep(0.02)
        assert len(writer.pending) == 5  # not due for a minute
        assert await writer.close(5, task) == 0  # a stop flushes them

    asyncio.run(scenario())
    assert commits.batches == [10, 10, 5]
    assert all_rows(lake_dir).height == 25


def test_at_once_skips_the_wait(lake_dir: Path) -> None:
    commits = Commits()

    async def scenario() -> None:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=60, on_commit=commits)
        task = asyncio.create_task(writer.run())
        writer.add(rows(3), at_once=True)
        async with asyncio.timeout(20):
            while not commits.batches:
                await asyncio.sleep(0.02)
        await writer.close(5, task)

    asyncio.run(scenario())
    assert commits.batches == [3]


def test_a_failing_lake_keeps_every_row_until_it_lands(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    blocker = lake_dir / "position_updates"
    blocker.write_text("not a Delta table")  # every write fails
    written = rows(7)

    async def scenario() -> None:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=0.05)
        task = asyncio.create_task(writer.run())
        writer.add(written[:4])
        async with asyncio.timeout(20):
            while writer.last_error is None:
                await asyncio.sleep(0.02)
        writer.add(written[4:])  # more arrive while the lake is down
        assert writer.pending == written
        assert writer.rows_written == 0
        await asyncio.to_thread(blocker.unlink)  # the lake recovers
        async with asyncio.timeout(20):
            while writer.pending:
                await asyncio.sleep(0.05)
        assert writer.rows_written == 7
        await writer.close(5, task)

    asyncio.run(scenario())
    assert sorted(all_rows(lake_dir)["conid"].to_list()) == [r.conid for r in written]


def test_past_the_bound_the_writer_fails_loudly(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    (lake_dir / "position_updates").write_text("not a Delta table")

    async def scenario() -> tuple[BacklogFullError, int]:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=0.05, max_pending=5)
        task = asyncio.create_task(writer.run())
        writer.add(rows(3))
        async with asyncio.timeout(20):
            while writer.last_error is None:
                await asyncio.sleep(0.02)
        writer.add(rows(2, first_conid=10))
        assert not writer.failed.done()  # 5 is still within the bound
        writer.add(rows(1, first_conid=20))
        error = await asyncio.wait_for(writer.failed, 1)
        return error, await writer.close(0.2, task)

    error, unwritten = asyncio.run(scenario())
    assert "5 row(s) are waiting" in str(error)
    assert "reconnect snapshot" in str(error)
    assert "Invalid table location" in str(error)  # the lake's own words
    assert unwritten == 5  # reported, not silently dropped


def test_a_replayed_batch_writes_nothing_twice(lake_dir: Path) -> None:
    batch = rows(5)

    async def scenario() -> None:
        for _ in range(3):  # as a crash between a commit and its acknowledgement would
            writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=0.01)
            task = asyncio.create_task(writer.run())
            writer.add(batch)
            assert await writer.close(10, task) == 0

    asyncio.run(scenario())
    stored = all_rows(lake_dir)
    assert stored.height == 5
    assert stored.select("account", "conid", "timestamp").is_unique().all()


def test_close_gives_up_after_its_timeout_and_says_how_many(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    (lake_dir / "position_updates").write_text("not a Delta table")

    async def scenario() -> int:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=60)
        task = asyncio.create_task(writer.run())
        writer.add(rows(2))
        return await writer.close(0.3, task)

    started = datetime.now(UTC)
    assert asyncio.run(scenario()) == 2
    assert datetime.now(UTC) - started < timedelta(seconds=5)


def test_a_table_it_can_never_append_to_fails_at_once(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    legacy = pl.DataFrame(  # an earlier writer's table, without `account`
        {"conid": [1], "symbol": ["SPY"], "position": [1.0], "timestamp": [datetime.now(UTC)]}
    )
    legacy.write_delta(str(lake_dir / "position_updates"))

    async def scenario() -> Exception:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=0.01)
        task = asyncio.create_task(writer.run())
        writer.add(rows(1))
        error = await asyncio.wait_for(writer.failed, 10)
        assert await writer.close(0.1, task) == 1
        return error

    error = asyncio.run(scenario())
    assert isinstance(error, LakeSchemaError)
    assert "column `account` is missing" in str(error)


class SetAside:
    def __init__(self) -> None:
        self.rows: list[tuple[PositionUpdate, str]] = []

    def __call__(self, rows: Sequence[tuple[PositionUpdate, str]]) -> None:
        self.rows.extend(rows)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        # issue #20: the whole batch was retried forever, and every later row behind it
        ({"conid": 2**64}, "the conid 18446744073709551616 is beyond the 64-bit range"),
        ({"conid": 2**63}, "is beyond the 64-bit range"),
        ({"position": math.nan}, "the quantity nan is not a finite number"),
        ({"account": ""}, "the account is empty"),
        # a value no check foresees: the frame cannot be built, found row by row
        ({"strike": "six hundred"}, "it cannot be made a row"),
    ],
)
def test_a_row_the_table_cannot_store_is_set_aside_and_the_rest_keeps_flowing(
    lake_dir: Path, bad: dict[str, object], reason: str
) -> None:
    first = rows(5)
    unstorable = dataclasses.replace(first[2], **bad)  # type: ignore[arg-type]
    first[2] = unstorable
    later = rows(3, first_conid=100)
    set_aside = SetAside()
    commits = Commits()

    async def scenario() -> BatchWriter:
        writer = BatchWriter(
            Lake(lake_dir).append_position_updates,
            flush_s=0.05,
            on_commit=commits,
            on_set_aside=set_aside,
        )
        task = asyncio.create_task(writer.run())
        writer.add(first)
        async with asyncio.timeout(20):
            while writer.pending:
                await asyncio.sleep(0.02)
        writer.add(later)  # and what comes after it is not held back
        async with asyncio.timeout(20):
            while writer.pending:
                await asyncio.sleep(0.02)
        assert await writer.close(5, task) == 0
        return writer

    writer = asyncio.run(scenario())
    stored = sorted(all_rows(lake_dir)["conid"].to_list())
    assert stored == sorted(r.conid for r in first + later if r is not unstorable)
    ((row, why),) = set_aside.rows
    assert row is unstorable
    assert reason in why
    assert commits.batches == [4, 3]  # the rest of its batch in one commit, as before
    assert (writer.rows_written, writer.set_aside) == (7, 1)
    assert (writer.queued, writer.done) == (8, 8)
    assert writer.last_error is None  # nothing was retried


def test_a_batch_of_nothing_storable_commits_nothing(lake_dir: Path) -> None:
    set_aside = SetAside()

    async def scenario() -> BatchWriter:
        writer = BatchWriter(
            Lake(lake_dir).append_position_updates, flush_s=0.01, on_set_aside=set_aside
        )
        task = asyncio.create_task(writer.run())
        writer.add([dataclasses.replace(r, conid=2**64 + r.conid) for r in rows(2)])
        assert await writer.close(5, task) == 0
        return writer

    before = version(lake_dir)
    writer = asyncio.run(scenario())
    assert len(set_aside.rows) == 2
    assert (writer.rows_written, writer.batches, writer.last_write_at) == (0, 0, None)
    assert version(lake_dir) == before


def test_the_oldest_waiting_row_is_reported_while_the_lake_is_down(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    (lake_dir / "position_updates").write_text("not a Delta table")
    waiting = rows(3)

    async def scenario() -> None:
        writer = BatchWriter(Lake(lake_dir).append_position_updates, flush_s=0.05)
        assert writer.oldest_pending_at is None
        task = asyncio.create_task(writer.run())
        writer.add(waiting)
        async with asyncio.timeout(20):
            while writer.last_error is None:
                await asyncio.sleep(0.02)
        assert writer.oldest_pending_at == waiting[0].timestamp
        assert (writer.queued, writer.done) == (3, 0)
        await writer.close(0.1, task)

    asyncio.run(scenario())
