"""Fixtures for the lake tests: real Delta tables in a temporary lake directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from deltalake import write_deltalake

from v6_pipeline.lake import schemas
from v6_pipeline_tests.lake.support import brute_force

T0 = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)

# (account, conid, position, minutes after T0)
Row = tuple[str, int, float, float]
Rows = Callable[[Sequence[Row]], pl.DataFrame]
Append = Callable[[Sequence[Row]], None]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def minute() -> Callable[[float], datetime]:
    """`minute(m)`: the time `m` minutes after the tests' reference time."""
    return at


@pytest.fixture
def rows() -> Rows:
    """`rows([(account, conid, position, minute), ...])` as a `POSITION_UPDATES` frame."""

    def make(specs: Sequence[Row]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "account": [s[0] for s in specs],
                "conid": [s[1] for s in specs],
                "symbol": [f"S{s[1] % 3}" for s in specs],
                "sec_type": ["OPT"] * len(specs),
                "position": [float(s[2]) for s in specs],
                "timestamp": [at(s[3]) for s in specs],
            }
        ).select(
            pl.col(n).cast(t)
            if n in ("account", "conid", "symbol", "sec_type", "position", "timestamp")
            else pl.lit(None, t).alias(n)
            for n, t in schemas.polars_schema(schemas.POSITION_UPDATES).items()
        )

    return make


@pytest.fixture
def updates_uri(tmp_path) -> str:
    return str(tmp_path / "lake" / "position_updates")


@pytest.fixture
def append(updates_uri: str, rows: Rows) -> Append:
    """Append rows as one plain Delta commit (as a fast streamer would)."""

    def write(specs: Sequence[Row]) -> None:
        write_deltalake(
            updates_uri,
            rows(specs).to_arrow().cast(schemas.POSITION_UPDATES),
            mode="append",
            partition_by=schemas.POSITION_UPDATES_PARTITION_BY,
        )

    return write


@pytest.fixture
def expected() -> Callable[[str, datetime], pl.DataFrame]:
    return brute_force
