"""What the sensors feed the incident model: judged windows and run outcomes.

Plain data, in the order Dagster recorded it (the sensors read with a storage-id
cursor, so three windows judged between two ticks are three observations). Every type
converts to and from a JSON-ready dict, because parts of it live in a sensor cursor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from v6_pipeline.ib.errors import IBSnapshotError
from v6_pipeline.reconcile import DiscrepancyType


def _subclass_names(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_subclass_names(sub) for sub in cls.__subclasses__()))


# Failures of IB's side (gateway down, client id in use, timeout, ...): the only ones a
# quiet window holds back. A lake error at 00:30 still pages.
IB_SIDE_CAUSES: frozenset[str] = frozenset(_subclass_names(IBSnapshotError))


@dataclass(frozen=True)
class Leg:
    """One discrepancy row of a window, as a trader reads it."""

    account: str
    conid: int
    type: str  # a DiscrepancyType value
    ib_position: float
    delta_position: float | None = None
    symbol: str = ""
    sec_type: str = ""
    expiry: str = ""
    strike: float | None = None
    right: str = ""
    details: str = ""

    @property
    def naked(self) -> bool:
        return self.type == DiscrepancyType.NAKED_POSITION

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Leg:
        """A leg from a `position_discrepancies` row; `expiry`, `strike` and `right` are
        used when the row has them (joined from the snapshot or the position log)."""
        return cls(
            account=str(row["account"]),
            conid=int(row["conid"]),
            type=str(row["type"]),
            ib_position=float(row["ib_position"]),
            delta_position=_float_or_none(row.get("delta_position")),
            symbol=str(row.get("symbol") or ""),
            sec_type=str(row.get("sec_type") or ""),
            expiry=str(row.get("expiry") or ""),
            strike=_float_or_none(row.get("strike")),
            right=str(row.get("right") or ""),
            details=str(row.get("details") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "conid": self.conid,
            "type": self.type,
            "ib": self.ib_position,
            "delta": self.delta_position,
            "symbol": self.symbol,
            "sec_type": self.sec_type,
            "expiry": self.expiry,
            "strike": self.strike,
            "right": self.right,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Leg:
        return cls(
            account=d["account"],
            conid=d["conid"],
            type=d["type"],
            ib_position=d["ib"],
            delta_position=d["delta"],
            symbol=d["symbol"],
            sec_type=d["sec_type"],
            expiry=d["expiry"],
            strike=d["strike"],
            right=d["right"],
            details=d["details"],
        )


@dataclass(frozen=True)
class WindowJudged:
    """A window's `position_discrepancies` materialization.

    `live`: judged from a snapshot taken live for it (a scheduled run of the newest
    closed window); a backfill or re-judgement of an older window is not live and never
    pages. `as_of` is the snapshot's `taken_at`; `judged_at` when Dagster recorded it.
    """

    window_key: str
    as_of: datetime
    judged_at: datetime
    legs: tuple[Leg, ...] = ()
    live: bool = True
    run_id: str | None = None


@dataclass(frozen=True)
class RunFailed:
    """A reconciliation run that failed for a pipeline reason.

    `cause` groups failures into one incident: the error type (`GatewayUnreachableError`,
    `LakeError`, ...). `message` is the sentence a person acts on. A run that failed
    only because the blocking `no_naked_positions` check failed is NOT a RunFailed: the
    pipeline worked, so feed it as `RunSucceeded` (the naked legs arrive as a
    `WindowJudged`).
    """

    run_id: str
    failed_at: datetime
    cause: str
    message: str
    live: bool = True
    window_key: str | None = None

    @property
    def ib_side(self) -> bool:
        return self.cause in IB_SIDE_CAUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "at": self.failed_at.isoformat(),
            "cause": self.cause,
            "message": self.message,
            "live": self.live,
            "window": self.window_key,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunFailed:
        return cls(
            run_id=d["run_id"],
            failed_at=datetime.fromisoformat(d["at"]),
            cause=d["cause"],
            message=d["message"],
            live=d["live"],
            window_key=d["window"],
        )


@dataclass(frozen=True)
class RunSucceeded:
    """A reconciliation run that got through (including one failed only by the blocking
    naked check)."""

    run_id: str
    succeeded_at: datetime
    live: bool = True
    window_key: str | None = None


Observation = WindowJudged | RunFailed | RunSucceeded


def _float_or_none(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number
