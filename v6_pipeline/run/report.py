"""An `Outcome` printed for a person: the verdict first, then what to look at."""

from __future__ import annotations

from collections.abc import Callable

from v6_pipeline.run.runner import Outcome


def print_outcome(outcome: Outcome, *, out: Callable[[str], None] = print) -> None:
    windows = outcome.keys[0] if outcome.keys[0] == outcome.keys[1] else " .. ".join(outcome.keys)
    if outcome.naked_check_passed is False:
        naked = (outcome.discrepancies["type"] == "NAKED_POSITION").sum()
        out(f"CRITICAL  window {windows}: no_naked_positions FAILED ({naked} naked position(s))")
    elif outcome.success:
        out(f"OK        window {windows}: no naked positions")
    else:
        out(f"FAILED    window {windows}: {outcome.failure}")
        out("          No discrepancy rows were written for it.")
    rows = outcome.discrepancies
    if outcome.naked_check_passed is not None:
        out(f"\n{rows.height} discrepancy row(s):" if rows.height else "\nNo discrepancies.")
    for row in rows.iter_rows(named=True):
        delta = "-" if row["delta_position"] is None else f"{row['delta_position']:g}"
        out(
            f"  {row['severity']:<8} {row['type']:<18} {row['account']:<6} "
            f"{row['symbol'] or '?':<5} conid {row['conid']:<8} "
            f"IB {row['ib_position']:g} / Delta {delta}"
        )
        out(f"           {row['details']}")
    tables = "position_discrepancies, ib_position_snapshots, position_updates"
    out(f"\nTables: {outcome.lake_dir}/{tables}")
    out(f"Dagster run: {outcome.run_id}")
