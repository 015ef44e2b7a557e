"""What a step of a run hands the next step of the same run, in the same process.

A run's steps run one after another in one process (the in-process executor), and each
used to read again what the step before had just read or committed: every window's
stored snapshot (three times) and the 10k-row `delta_latest_positions` of each window
(2.88M rows a day, written by one step and read back by the next). A step now hands on
what it read or committed, as a read would return it; the next step takes it when it
covers its windows, and reads the lake otherwise (another process, a re-run).

Only one run's values are kept: a new run's first hand-off drops the previous run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

_V = TypeVar("_V")

_run: str | None = None
_values: dict[str, dict[datetime, object]] = {}


def hand_on(run_id: str, name: str, values: dict[datetime, _V]) -> None:
    global _run
    if run_id != _run:
        _values.clear()
        _run = run_id
    _values[name] = dict(values)


def take(run_id: str, name: str, windows: Sequence[datetime]) -> dict[datetime, _V] | None:
    """`name`'s values for exactly `windows`, if this run handed them on; else None."""
    found = _values.get(name) if run_id == _run else None
    if found is None or set(found) != set(windows):
        return None
    return found  # type: ignore[return-value]
