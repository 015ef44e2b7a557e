"""`v6 demo`: the reconciliation on the demo books, printed for a person."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import polars as pl

HELP = "run one reconciliation on the embedded demo books and print the verdict"


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no options yet


def run(args: argparse.Namespace) -> int:
    from v6_pipeline.demo.book import (
        DEMO_STALE_AFTER_S,
        STORY,
        demo_position_updates,
        portfolio_json,
    )
    from v6_pipeline.reconcile import reconcile

    now = datetime.now(UTC)
    ib = pl.DataFrame(portfolio_json()["positions"]).select(
        "account", "conid", "symbol", "sec_type", "expiry", "strike", "right", "position"
    )
    delta = (
        demo_position_updates(now)
        .sort("timestamp")
        .group_by("account", "conid", maintain_order=True)
        .last()
    )
    result = reconcile(ib, delta, as_of=now, stale_after=timedelta(seconds=DEMO_STALE_AFTER_S))
    print("NOTE: the IB Gateway emulator and the Dagster pipeline are not built yet;")
    print("this demo runs the pure reconciliation on the demo books only.\n")
    print("The demo books plant:")
    for leg, story in STORY:
        print(f"  {leg:<30} {story}")
    print(f"\nReconciliation as of {now:%Y-%m-%d %H:%M:%S} UTC: {result.height} discrepancies")
    for row in result.iter_rows(named=True):
        print(f"  [{row['severity']:>8}] {row['type']:<19} {row['details']}")
    return 0
