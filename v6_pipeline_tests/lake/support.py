"""Shared by the lake tests: generated history rows, and the answer by brute force."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
from deltalake import DeltaTable

from v6_pipeline.lake import AmbiguousHistoryError, schemas

T0 = datetime(2026, 1, 5, tzinfo=UTC)
COLUMNS = schemas.polars_schema(schemas.POSITION_UPDATES)
_GIVEN = ("account", "conid", "symbol", "position", "timestamp")


def history_frame(
    rows: list[tuple[str, int, int, int, int]], *, legacy: bool = False
) -> pl.DataFrame:
    """(account, conid, position, minute, microsecond) rows; `legacy` drops the columns
    the earlier writer did not have."""
    full = pl.DataFrame(
        {
            "account": [r[0] for r in rows],
            "conid": [r[1] for r in rows],
            "symbol": [f"S{r[1] % 2}" for r in rows],
            "position": [float(r[2]) for r in rows],
            "timestamp": [T0 + timedelta(minutes=r[3], microseconds=r[4]) for r in rows],
        }
    ).select(
        pl.col(n).cast(t) if n in _GIVEN else pl.lit(None, t).alias(n) for n, t in COLUMNS.items()
    )
    return full.drop("account", "sec_type") if legacy else full


def brute_force(uri: str, as_of: datetime) -> pl.DataFrame:
    """The answer by reading everything: the reference `read_latest` must equal. Raises
    `AmbiguousHistoryError` when a key's latest timestamp holds two quantities."""
    if not DeltaTable(uri).file_uris():
        return pl.DataFrame(schema=COLUMNS)
    rows = pl.read_delta(uri).filter(pl.col("timestamp") <= as_of)
    at_latest = rows.filter(
        pl.col("timestamp") == pl.col("timestamp").max().over("account", "conid")
    )
    tied = at_latest.group_by("account", "conid").agg(
        pl.col("timestamp").first(), pl.col("position").min(), pl.col("position").max().alias("o")
    )
    if not (tied := tied.filter(pl.col("position") != pl.col("o"))).is_empty():
        raise AmbiguousHistoryError(uri, as_of, tied.rows())
    return (
        rows.sort("timestamp", maintain_order=True)
        .group_by("account", "conid", maintain_order=True)
        .last()
        .select(COLUMNS.names())
        .sort("account", "conid")
    )


def ambiguous_keys(read: Callable[[], object]) -> frozenset[tuple[str, int]] | None:
    """The keys `read()` finds ambiguous, or None when it answers."""
    try:
        read()
    except AmbiguousHistoryError as error:
        return frozenset((account, conid) for account, conid, *_ in error.ties)
    return None
