"""The demo's two books, built to disagree in every way the contract knows.

The IB side is `portfolio.json` (served by the gateway emulator); the Delta side is
the `position_updates` log below, written relative to the moment the demo runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from v6_pipeline.lake.schemas import POSITION_UPDATES, polars_schema

# What the demo plants, and what the reconciliation must say about it.
STORY: list[tuple[str, str]] = [
    ("DU111 SPY 2027-01-15 600 C", "agrees (-3 on both sides): no row"),
    ("DU111 SPY 2027-01-15 550 P", "IB 5, Delta 4: POSITION_MISMATCH"),
    ("DU111 QQQ 2026-12-18 500 C", "IB 2, no Delta row: MISSING_FROM_DELTA"),
    ("DU111 IWM 2026-12-18 220 P", "closed to 0 on both sides: must NOT alarm"),
    ("DU222 SPY 2027-01-15 600 C", "agrees, but Delta last changed 3 days ago: STALE_DATA"),
    ("DU222 SPY 2026-12-18 580 P", "Delta -2, IB has nothing: NAKED_POSITION (critical)"),
    ("DU222 AAPL stock", "IB 100, Delta 50, but STK is out of scope: no row"),
]

# Seconds after which an unchanged position is STALE in the demo (one day).
DEMO_STALE_AFTER_S = 86_400

_OPT = {"sec_type": "OPT", "multiplier": "100", "currency": "USD"}
# (account, conid, symbol, expiry, strike, right, position, age)
_Update = tuple[str, int, str, str | None, float | None, str | None, float, timedelta]
_UPDATES: list[_Update] = [
    ("DU111", 500001, "SPY", "20270115", 600.0, "C", -3.0, timedelta(hours=2)),
    ("DU111", 500002, "SPY", "20270115", 550.0, "P", 4.0, timedelta(hours=1)),
    ("DU111", 500005, "IWM", "20261218", 220.0, "P", 1.0, timedelta(hours=6)),
    ("DU111", 500005, "IWM", "20261218", 220.0, "P", 0.0, timedelta(hours=3)),
    ("DU222", 500001, "SPY", "20270115", 600.0, "C", 1.0, timedelta(days=3)),
    ("DU222", 500004, "SPY", "20261218", 580.0, "P", -2.0, timedelta(hours=4)),
]


def portfolio_path() -> Path:
    """The demo portfolio file shipped with the package."""
    return Path(str(resources.files("v6_pipeline.demo").joinpath("portfolio.json")))


# The naked leg: Delta holds it open, IB reports nothing (`v6 demo --ui`'s streamer
# closes it in position_updates).
NAKED_LEG = "DU222 SPY 2026-12-18 580 P"


def _option_rows(updates: list[_Update], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "account": account,
            "conid": conid,
            "symbol": symbol,
            **_OPT,
            "right": right,
            "strike": strike,
            "expiry": expiry,
            "position": position,
            "avg_cost": None,
            "timestamp": now - age,
        }
        for account, conid, symbol, expiry, strike, right, position, age in updates
    ]


def demo_position_updates(now: datetime) -> pl.DataFrame:
    """The Delta side of the demo, as `position_updates` rows written before `now`."""
    rows = _option_rows(_UPDATES, now)
    rows.append(
        {
            "account": "DU222",
            "conid": 265598,
            "symbol": "AAPL",
            "sec_type": "STK",
            "right": None,
            "strike": None,
            "expiry": None,
            "multiplier": None,
            "currency": "USD",
            "position": 50.0,
            "avg_cost": 231.4,
            "timestamp": now - timedelta(hours=5),
        }
    )
    return pl.DataFrame(rows, schema=polars_schema(POSITION_UPDATES))
