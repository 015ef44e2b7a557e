"""`v6 reconcile`'s printout names every WARN check that failed, right after the verdict:
an "OK" with an account left unjudged must not read as all clear (the emulator, a
PostgreSQL instance, the command in its own process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from v6_pipeline.demo.book import portfolio_path
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.lake.schemas import POSITION_UPDATES, polars_schema
from v6_pipeline.run.runner import EXIT_OK
from v6_pipeline_tests.support import v6

_COLUMNS = ("account", "conid", "symbol", "sec_type", "right", "strike", "expiry")
_COLUMNS += ("multiplier", "currency", "position", "avg_cost")


def _book_as_ib_holds_it(now: datetime) -> pl.DataFrame:
    """`position_updates` agreeing with every position of the demo portfolio, plus an
    open option in DU999, an account the gateway does not manage."""
    positions = json.loads(portfolio_path().read_text())["positions"]
    foreign = {
        **positions[0],
        "account": "DU999",
        "conid": 500009,
        "position": 4,
        "avg_cost": 100.0,
    }
    rows = [
        {**{c: p.get(c) for c in _COLUMNS}, "timestamp": now - timedelta(minutes=1)}
        for p in [*positions, foreign]
    ]
    return pl.DataFrame(rows, schema=polars_schema(POSITION_UPDATES), strict=False)


def test_an_ok_verdict_prints_the_failed_accounts_check_after_it(
    demo_gateway: GatewayThread, tmp_path: Path, pg_home: Path
) -> None:
    lake = tmp_path / "lake"
    Lake(lake).append_position_updates(_book_as_ib_holds_it(datetime.now(UTC)))
    proc = v6(
        "reconcile",
        env={
            "DAGSTER_HOME": str(pg_home),
            "V6_IB_PORT": str(demo_gateway.port),
            "V6_LAKE_DIR": str(lake),
            "V6_STREAM_DEAD_AFTER_S": "",  # no `v6 stream` here: its check is off
        },
        timeout=300,
    )
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("OK        window ")
    assert lines[1] == (
        "WARN      delta_accounts_are_managed: Delta holds 1 open position(s) in account(s) "
        "DU999 that the IB answer does not cover, so they were not judged: connect a login "
        "that manages them, or set V6_ACCOUNTS."
    )
    assert lines[2] == ""  # then the rows: none, IB and Delta agree on what was judged
    assert lines[3] == "No discrepancies."
    assert sum(line.startswith("WARN") for line in lines) == 1
