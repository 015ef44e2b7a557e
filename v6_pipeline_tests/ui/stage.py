"""The stage the browser suite plays on: the UI's address, its lake and the IB books
that past windows were snapshotted from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from v6_pipeline.defs.partitions import WINDOW, window_key, window_start
from v6_pipeline.ib.gateway import GatewayThread, Portfolio, PortfolioPosition
from v6_pipeline.ib.snapshot import take_snapshot
from v6_pipeline.lake.lake import Lake
from v6_pipeline.lake.schemas import POSITION_UPDATES, polars_schema
from v6_pipeline_tests.support import DEMO


@dataclass(frozen=True)
class Stage:
    """The running UI and what is behind it."""

    url: str
    lake: Lake
    newest: datetime  # the newest closed window when the stage was set up

    def key(self, windows_back: int) -> str:
        """A past window, `windows_back` before the newest (well inside the partitions)."""
        return window_key(self.newest - windows_back * WINDOW)

    def store_snapshot(self, key: str, portfolio: Portfolio = DEMO) -> None:
        """Store, for window `key`, what IB answered when it held `portfolio`, as the
        pipeline would have taken it live 2 s after the window closed."""
        with GatewayThread(portfolio) as ib:
            answer = take_snapshot(ib.host, ib.port, 606, timeout_s=10)
        start = window_start(key)
        self.lake.write_snapshot(
            answer.positions,
            window_start=start,
            taken_at=start + WINDOW + timedelta(seconds=2),
            accounts=answer.accounts,
            duration_s=answer.duration_s,
        )

    def repair_book(self, at: datetime) -> None:
        """Write to position_updates, at `at`, what makes Delta agree with the DEMO book IB
        serves: the naked leg closed, the missing and mismatched legs as IB holds them, and
        the stale one confirmed afresh. A window snapshotted after `at` is clean."""
        rows = [
            {**leg, "sec_type": "OPT", "multiplier": "100", "currency": "USD",
             "avg_cost": None, "timestamp": at}
            for leg in _REPAIRS
        ]  # fmt: skip
        self.lake.append_position_updates(
            pl.DataFrame(rows, schema=polars_schema(POSITION_UPDATES))
        )


def _leg(
    account: str, conid: int, symbol: str, expiry: str, strike: float, right: str, position: float
) -> dict:
    return {
        "account": account, "conid": conid, "symbol": symbol, "expiry": expiry,
        "strike": strike, "right": right, "position": position,
    }  # fmt: skip


# What the repair writes (the DEMO book's legs, v6_pipeline/demo/book.py's STORY).
_REPAIRS = [
    _leg("DU222", 500004, "SPY", "20261218", 580.0, "P", 0.0),  # the naked leg, closed
    _leg("DU111", 500003, "QQQ", "20261218", 500.0, "C", 2.0),  # was missing from Delta
    _leg("DU111", 500002, "SPY", "20270115", 550.0, "P", 5.0),  # was 4 against IB's 5
    _leg("DU222", 500001, "SPY", "20270115", 600.0, "C", 1.0),  # unchanged, now fresh
]


# The demo's naked leg (Delta -2, IB nothing), as IB would report it once held.
NAKED_LEG = PortfolioPosition(
    account="DU222", conid=500004, symbol="SPY", sec_type="OPT", position=-2.0,
    expiry="20261218", strike=580.0, right="P", multiplier="100", exchange="SMART",
    currency="USD", local_symbol="SPY   261218P00580000", trading_class="SPY",
)  # fmt: skip
# IB agrees on the naked leg: 3 discrepancies, the blocking check passes.
LEG_HELD = Portfolio(DEMO.accounts, (*DEMO.positions, NAKED_LEG))
# ... and on DU111's SPY put (Delta 4): 2 discrepancies.
LEG_HELD_MISMATCH_FIXED = Portfolio(
    DEMO.accounts,
    tuple(
        dataclasses.replace(p, position=4.0) if p.key == ("DU111", 500002) else p
        for p in LEG_HELD.positions
    ),
)
