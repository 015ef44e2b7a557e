"""`PositionUpdate`: one position as IB reported it, and the `position_updates` row it makes.

The stream's unit of data: a message of the `reqPositions` subscription, a row of a
snapshot and a row of Delta's latest are all one of these, so the book compares like
with like. Frames go in and out in the lake's own schema.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import polars as pl

from v6_pipeline.lake.schemas import POSITION_UPDATES, polars_schema

COLUMNS: pl.Schema = polars_schema(POSITION_UPDATES)

Key = tuple[str, int]  # (account, conid)

# What the int64 `conid` column holds (ib_async parses a conid of any size).
CONID_MIN, CONID_MAX = -(2**63), 2**63 - 1


class Contract(NamedTuple):
    """What a conid stands for, as far as a position message says."""

    symbol: str
    sec_type: str
    expiry: str
    strike: float
    right: str
    currency: str

    def describe(self) -> str:
        parts = (self.symbol, self.expiry, f"{self.strike:g}" if self.strike else "", self.right)
        return f"{' '.join(p for p in parts if p)} ({self.sec_type or 'no sec type'})"


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """A key's quantity (and average cost, with the multiplier) from `timestamp` on."""

    account: str
    conid: int
    symbol: str
    sec_type: str
    right: str
    strike: float
    expiry: str
    multiplier: str
    currency: str
    position: float
    avg_cost: float | None  # None: unknown (IB sent no finite number)
    timestamp: datetime

    @property
    def key(self) -> Key:
        return (self.account, self.conid)

    @property
    def contract(self) -> Contract:
        return Contract(
            self.symbol, self.sec_type, self.expiry, self.strike, self.right, self.currency
        )

    def closed(self, at: datetime) -> PositionUpdate:
        """The same key, flat from `at` on (IB reports a closed position with cost 0)."""
        return dataclasses.replace(self, position=0.0, avg_cost=0.0, timestamp=at)

    def raw(self) -> str:
        """Every field as received, for a log line that lets a person see what came in."""
        return " ".join(
            f"{field.name}={getattr(self, field.name)!r}"
            for field in dataclasses.fields(self)
            if field.name != "timestamp"
        )


def update(
    *,
    account: str,
    conid: int,
    symbol: str,
    sec_type: str,
    right: str,
    strike: float,
    expiry: str,
    multiplier: str,
    currency: str,
    position: float,
    avg_cost: float | None,
    timestamp: datetime,
) -> PositionUpdate:
    """A `PositionUpdate` with an average cost that is not a finite number made unknown
    (it is informational; the quantity is what is judged, and checked by the book)."""
    finite_cost = avg_cost if avg_cost is not None and math.isfinite(avg_cost) else None
    return PositionUpdate(
        account,
        conid,
        symbol,
        sec_type,
        right,
        strike,
        expiry,
        multiplier,
        currency,
        position,
        finite_cost,
        timestamp,
    )


def unstorable(row: PositionUpdate) -> str | None:
    """Why `row` cannot be a `position_updates` row (None: it can). Pure and cheap: the
    writer asks it of every row, so one bad row is set aside instead of failing its batch."""
    if isinstance(row.conid, bool) or not isinstance(row.conid, int):
        return f"the conid {row.conid!r} is not an integer"
    if not CONID_MIN <= row.conid <= CONID_MAX:
        return f"the conid {row.conid} is beyond the 64-bit range of position_updates' conid"
    if not isinstance(row.account, str) or not row.account.strip():
        return "the account is empty"
    if not isinstance(row.symbol, str) or not row.symbol.strip():
        return "the symbol is empty"
    if not isinstance(row.position, int | float) or not math.isfinite(row.position):
        return f"the quantity {row.position!r} is not a finite number"
    if not isinstance(row.timestamp, datetime) or row.timestamp.tzinfo is None:
        return f"the timestamp {row.timestamp!r} is not a timezone-aware time"
    return None


def from_frame(frame: pl.DataFrame, *, timestamp: datetime | None = None) -> list[PositionUpdate]:
    """The rows of a `position_updates`-like frame (Delta's latest, or an IB snapshot with
    `timestamp` given); a missing or null text column reads as empty, a strike as 0."""
    return [_from_row(row, timestamp) for row in frame.iter_rows(named=True)]


def _from_row(row: dict[str, Any], timestamp: datetime | None) -> PositionUpdate:
    def text(name: str) -> str:
        return row.get(name) or ""

    return update(
        account=text("account"),
        conid=row["conid"],
        symbol=text("symbol"),
        sec_type=text("sec_type"),
        right=text("right"),
        strike=row.get("strike") or 0.0,
        expiry=text("expiry"),
        multiplier=text("multiplier"),
        currency=text("currency"),
        position=row["position"],
        avg_cost=row.get("avg_cost"),
        timestamp=timestamp if timestamp is not None else row["timestamp"],
    )


def to_frame(updates: Iterable[PositionUpdate]) -> pl.DataFrame:
    """Rows for `Lake.append_position_updates`, in the table's schema."""
    rows = list(updates)
    return pl.DataFrame(
        {name: [getattr(u, name) for u in rows] for name in COLUMNS.names()}, schema=COLUMNS
    )
