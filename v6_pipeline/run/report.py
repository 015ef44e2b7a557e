"""An `Outcome` printed for a person: the verdict first, then what to look at.

Right after the verdict come the WARN checks that failed (a passing critical check
with a failed WARN check, such as `delta_accounts_are_managed`, is not "all clear"),
and any window of the run that was snapshotted but not judged. Both are read from the
lake's `position_judgment_log` and `ib_snapshot_log`, which record each window's
judgment and snapshot whatever became of the Dagster instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
from deltalake.exceptions import DeltaError

from v6_pipeline.defs.partitions import WINDOW, window_key, window_start
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.lake.snapshots import Judgment, JudgmentLog
from v6_pipeline.run.runner import Outcome

_LINES_SHOWN = 20  # of failed checks or un-judged windows in a range; the rest counted


def print_outcome(outcome: Outcome, *, out: Callable[[str], None] = print) -> None:
    windows = outcome.keys[0] if outcome.keys[0] == outcome.keys[1] else " .. ".join(outcome.keys)
    recorded = _recorded(outcome)
    if outcome.naked_check_passed is False:
        naked = (outcome.discrepancies["type"] == "NAKED_POSITION").sum()
        out(f"CRITICAL  window {windows}: no_naked_positions FAILED ({naked} naked position(s))")
        if outcome.failure:  # and the run failed for another reason too (a gap)
            out(f"FAILED    {outcome.failure}")
    elif outcome.success:
        out(f"OK        window {windows}: no naked positions")
    else:
        out(f"FAILED    window {windows}: {outcome.failure}")
    for line in _failed_warn_checks(outcome, recorded):
        out(line)
    unjudged = _unjudged(recorded)
    for line in unjudged:
        out(line)
    if not outcome.success and outcome.naked_check_passed is None and not unjudged:
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


@dataclass(frozen=True)
class _Recorded:
    """What the lake recorded for the run's windows."""

    single: bool
    judgments: dict[datetime, Judgment | None] = field(default_factory=dict)
    snapshots: dict[datetime, datetime] = field(default_factory=dict)  # window -> taken_at


def _recorded(outcome: Outcome) -> _Recorded:
    first, last = (window_start(k) for k in outcome.keys)
    starts = []
    while first <= last:
        starts.append(first)
        first += WINDOW
    log = JudgmentLog(outcome.lake_dir)
    try:
        return _Recorded(len(starts) == 1, log.read(starts), log.snapshot_times(starts))
    except (LakeError, DeltaError, OSError, pl.exceptions.PolarsError):
        # The lake failed the run, and its sentence is already printed.
        return _Recorded(len(starts) == 1)


def _failed_warn_checks(outcome: Outcome, recorded: _Recorded) -> list[str]:
    """Each WARN check this run's judgment failed: its name and its description line."""
    lines = [
        f"WARN      {'' if recorded.single else f'window {window_key(start)}: '}"
        f"{check.check}: {check.description}"
        for start, judgment in recorded.judgments.items()
        if judgment is not None and judgment.run_id == outcome.run_id
        for check in judgment.failed_checks
        if check.severity == "WARN"
    ]
    return _capped(lines, "failed WARN check(s)")


def _unjudged(recorded: _Recorded) -> list[str]:
    """The run's windows that have a stored snapshot and no judgment: never "clean"."""
    lines = [
        f"UNJUDGED  window {(key := window_key(start))} was snapshotted at "
        f"{taken_at:%Y-%m-%d %H:%M:%S} UTC but not judged: its missing discrepancy rows say "
        f"nothing; re-run it with `v6 reconcile --window {key}`"
        for start, taken_at in sorted(recorded.snapshots.items())
        if recorded.judgments.get(start) is None
    ]
    return _capped(lines, "window(s) snapshotted but not judged")


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= _LINES_SHOWN:
        return lines
    return [*lines[:_LINES_SHOWN], f"          ... and {len(lines) - _LINES_SHOWN} more {what}"]
