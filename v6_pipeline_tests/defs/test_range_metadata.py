"""A range run's windows carry their numbers without the tables (one stored event each
stays small), and each window's verdicts target its newest materialization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from v6_pipeline.defs import checks
from v6_pipeline.defs import metadata as md
from v6_pipeline.defs.resources import ReconciliationSettings
from v6_pipeline.judging import judge, relevant_latest
from v6_pipeline.lake import schemas
from v6_pipeline.lake.schemas import polars_schema
from v6_pipeline.lake.snapshots import StoredSnapshot

WINDOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
TAKEN = WINDOW + timedelta(minutes=5, seconds=2)
TABLES = {"positions", "dagster/column_schema", "positions_per_account", "discrepancies"}


def snapshot() -> StoredSnapshot:
    """IB holds conid 1 and 2 in DU111; conid 3 is closed there."""
    rows = [
        {"account": "DU111", "conid": c, "symbol": "SPY", "sec_type": "OPT", "position": q}
        for c, q in ((1, 2.0), (2, -1.0), (3, 0.0))
    ]
    stamped = [{**r, "window_start": WINDOW, "taken_at": TAKEN} for r in rows]
    positions = pl.DataFrame(stamped, schema=polars_schema(schemas.IB_POSITION_SNAPSHOTS))
    return StoredSnapshot(WINDOW, TAKEN, ("DU111",), 0.4, positions)


def latest() -> pl.DataFrame:
    """Delta holds conid 1 as IB does, and conid 9, which IB does not report: naked."""
    rows = [
        {"account": "DU111", "conid": c, "symbol": "SPY", "sec_type": "OPT", "position": q,
         "timestamp": TAKEN - timedelta(hours=1)}
        for c, q in ((1, 2.0), (9, 3.0))
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=polars_schema(schemas.POSITION_UPDATES))


def split(full: dict[str, object], light: dict[str, object]) -> set[str]:
    """The keys only the full metadata has, after checking the shared ones agree."""
    assert set(light) <= set(full)
    for key in light:
        assert _plain(light[key]) == _plain(full[key]), key
    return set(full) - set(light)


def _plain(value: object) -> object:
    return getattr(value, "value", value)


def test_a_range_window_has_every_number_of_a_single_run_and_no_tables() -> None:
    snap = snapshot()
    believed = relevant_latest(snap, latest())
    window = judge(
        snap, believed, settings=ReconciliationSettings(), account_filter=None, live=False
    )
    for build in (
        lambda full: md.snapshot_metadata(snap, live=False, table="t", full=full),
        lambda full: md.latest_metadata(believed, as_of=TAKEN, table="t", full=full),
        lambda full: md.judged_metadata(
            window, settings=ReconciliationSettings(), table="t", full=full
        ),
    ):
        only_full = split(build(True), build(False))
        assert only_full
        assert only_full <= TABLES
    light = md.judged_metadata(window, settings=ReconciliationSettings(), table="t", full=False)
    assert light["naked_position_count"] == 1
    assert light["missing_from_delta_count"] == 1  # conid 2


def test_a_range_windows_verdicts_keep_outcome_counts_and_naming_description() -> None:
    snap = snapshot()
    window = judge(
        snap,
        relevant_latest(snap, latest()),
        settings=ReconciliationSettings(),
        account_filter=None,
        live=False,
    )
    args = ("2026-11-25-14:00", window.rows, window.unmanaged, None)
    full = checks.window_verdicts(*args, full=True)
    light = checks.window_verdicts(*args, full=False)
    assert [v.check for v in light] == [v.check for v in full]
    for f, lt in zip(full, light, strict=True):
        assert (lt.passed, lt.severity, lt.description) == (f.passed, f.severity, f.description)
        assert split(f.metadata, lt.metadata) <= {"naked_positions", "positions"}
    naked = light[0]
    assert not naked.passed
    assert "DU111" in (naked.description or "")
