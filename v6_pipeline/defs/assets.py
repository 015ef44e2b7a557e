"""The three assets of a 5-minute window: IB snapshot, Delta latest, discrepancies.

Each asset owns its Delta table and writes it itself, replacing exactly its window's
rows (the deltalake-polars IO manager mishandles 5-minute partitions). Downstream
assets read their inputs back from the lake, so a backfill of `position_discrepancies`
alone re-judges stored snapshots without touching IB.

IB can only report positions *now*: a window's snapshot is taken live once, while the
window is the newest closed one, and reused ever after. A backfill of a range runs as
one run (`BackfillPolicy.single_run()`) and loops over its windows.
"""

import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from v6_pipeline.defs import metadata as md
from v6_pipeline.defs.partitions import WINDOW, window_key, window_partitions, window_start
from v6_pipeline.defs.resources import IBGatewayResource, LakeResource, ReconciliationSettings
from v6_pipeline.ib.errors import IBSnapshotError
from v6_pipeline.lake import paths, schemas
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.lake.lake import Lake
from v6_pipeline.lake.snapshots import StoredSnapshot
from v6_pipeline.reconcile import DiscrepancyType, reconcile

# Single-run backfills are the point of `backfill_policy`; its beta status is known.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

GROUP = "reconciliation"
IB_POOL = "ib_gateway"  # dagster.yaml limits it to one step at a time: one IB client
# A scheduled run that starts late (a busy daemon) may still snapshot its window live.
LIVE_GRACE = timedelta(minutes=1)

_PARTITIONED = {
    "partitions_def": window_partitions,
    "group_name": GROUP,
    "backfill_policy": dg.BackfillPolicy.single_run(),
}


def can_snapshot_live(window: datetime, now: datetime) -> bool:
    """Whether `window` may be snapshotted at `now`: it is the newest closed window."""
    end = window + WINDOW
    return end <= now < end + WINDOW + LIVE_GRACE


def windows_of(context: dg.AssetExecutionContext) -> list[datetime]:
    return [window_start(key) for key in context.partition_keys]


@dg.asset(
    **_PARTITIONED,
    pool=IB_POOL,
    kinds={"deltalake", "polars"},
    description=(
        "Every IB position of every managed account for the window, as IB reported them "
        "in one complete reqPositions answer. Taken live while the window is the newest "
        "closed one; stored in ib_position_snapshots and reused by every later run."
    ),
)
def ib_position_snapshot(
    context: dg.AssetExecutionContext, ib: IBGatewayResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get_lake()
    now = datetime.now(UTC)
    windows = windows_of(context)
    stored = store.read_snapshots(window_starts=windows)
    never = [w for w, s in stored.items() if s is None and not can_snapshot_live(w, now)]
    if never:
        raise dg.Failure(description=_never_snapshotted(never, now))
    taken: list[tuple[StoredSnapshot, bool]] = []  # (snapshot, taken live now)
    for window, found in stored.items():
        if found is not None:
            context.log.info(
                f"window {window_key(window)}: reusing the snapshot taken at "
                f"{found.taken_at:%H:%M:%S} UTC ({found.positions.height} positions)"
            )
            taken.append((found, False))
            continue
        context.log.info(
            f"window {window_key(window)}: taking a live snapshot from {ib.host}:{ib.port}"
        )
        try:
            snap = ib.snapshot()
        except IBSnapshotError as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"error": type(exc).__name__, "gateway": f"{ib.host}:{ib.port}"},
            ) from exc
        live = StoredSnapshot(window, snap.taken_at, snap.accounts, snap.duration_s, snap.positions)
        store.write_snapshot(
            live.positions,
            window_start=window,
            taken_at=live.taken_at,
            accounts=live.accounts,
            duration_s=live.duration_s,
        )
        taken.append((live, True))
    return dg.MaterializeResult(metadata=_snapshot_metadata(taken, store))


@dg.asset(
    **_PARTITIONED,
    deps=[ib_position_snapshot],
    kinds={"deltalake", "polars"},
    description=(
        "What the Delta Lake position log believes we hold: for each (account, conid) the "
        "latest position_updates row as of the window's IB snapshot (as_of = taken_at). "
        "Later rows do not exist for this window, so a backfill is reproducible."
    ),
)
def delta_latest_positions(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get_lake()
    started = time.perf_counter()
    windows = 0
    latest = pl.DataFrame()
    for window, _, latest in _judged_inputs(store, windows_of(context)):
        windows += 1
        context.log.info(f"window {window_key(window)}: {latest.height} keys in position_updates")
    metadata: dict[str, object] = {
        "dagster/row_count": latest.height,
        "open_positions": latest.filter(pl.col("position").abs() > 0).height,
        "read_s": round(time.perf_counter() - started, 3),
        "position_updates": dg.MetadataValue.path(store.uri(paths.POSITION_UPDATES)),
        "dagster/column_schema": md.column_schema(schemas.POSITION_UPDATES),
    }
    if latest.height:
        metadata["positions_per_account"] = md.per_account(latest)
    if windows > 1:
        metadata["windows"] = windows
    return dg.MaterializeResult(metadata=metadata)


NAKED_CHECK = "no_naked_positions"
WARN_CHECKS: dict[DiscrepancyType, tuple[str, str]] = {
    DiscrepancyType.MISSING_FROM_DELTA: (
        "no_positions_missing_from_delta",
        "Every open IB position has a row in position_updates.",
    ),
    DiscrepancyType.POSITION_MISMATCH: (
        "positions_match_ib",
        "Where both sides hold a position, the quantities agree within V6_ABS_TOL.",
    ),
    DiscrepancyType.STALE_DATA: (
        "positions_are_fresh",
        "No position agrees with IB only because Delta last changed it long ago "
        "(V6_STALE_AFTER_S).",
    ),
}


@dg.asset(
    **_PARTITIONED,
    deps=[delta_latest_positions],
    kinds={"deltalake", "polars"},
    description=(
        "One row per discrepancy between the IB snapshot and the Delta latest positions "
        "of the window: NAKED_POSITION (critical), MISSING_FROM_DELTA, POSITION_MISMATCH, "
        "STALE_DATA. Re-materializing a window replaces its rows."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            NAKED_CHECK,
            asset="position_discrepancies",
            blocking=True,
            description=(
                "No position that Delta believes open is absent from IB: strategies must "
                "not trade a leg that does not exist. Blocking: the run fails."
            ),
        ),
        *(
            dg.AssetCheckSpec(name, asset="position_discrepancies", description=text)
            for name, text in WARN_CHECKS.values()
        ),
    ],
)
def position_discrepancies(
    context: dg.AssetExecutionContext, lake: LakeResource, settings: ReconciliationSettings
) -> dg.MaterializeResult:
    store = lake.get_lake()
    scope, tol, stale = settings.scope(), settings.tolerance(), settings.stale_after()
    judged = []
    ib_open = delta_open = 0
    last_as_of = None
    for window, snap, latest in _judged_inputs(store, windows_of(context)):
        rows = reconcile(
            snap.positions,
            latest,
            as_of=snap.taken_at,
            abs_tol=tol,
            stale_after=stale,
            sec_types=scope,
        )
        store.write_discrepancies(rows, window_start=window)
        context.log.info(
            f"window {window_key(window)}: {rows.height} discrepancies "
            f"({_count(rows, DiscrepancyType.NAKED_POSITION)} naked) as of "
            f"{snap.taken_at:%H:%M:%S} UTC"
        )
        judged.append(rows.with_columns(window_start=pl.lit(window, pl.Datetime("us", "UTC"))))
        ib_open = _open_in_scope(snap.positions, scope, tol)
        delta_open = _open_in_scope(latest, scope, tol)
        last_as_of = snap.taken_at
    found = pl.concat(judged)
    assert last_as_of is not None
    metadata = {
        "dagster/row_count": found.height,
        **{f"{t.value.lower()}_count": _count(found, t) for t in DiscrepancyType},
        "ib_open_positions": ib_open,
        "delta_open_positions": delta_open,
        "as_of": md.timestamp(last_as_of),
        "settings": settings.describe(),
        "discrepancies": md.markdown_table(
            found,
            [
                "window_start",
                "severity",
                "type",
                "account",
                "symbol",
                "ib_position",
                "delta_position",
                "details",
            ],
            empty="IB and Delta Lake agree: no discrepancies.",
        ),
        "table": dg.MetadataValue.path(store.uri(paths.POSITION_DISCREPANCIES)),
        "dagster/column_schema": md.column_schema(schemas.POSITION_DISCREPANCIES),
    }
    if len(judged) > 1:
        metadata["windows"] = len(judged)
    return dg.MaterializeResult(metadata=metadata, check_results=_check_results(found))


def _judged_inputs(
    store: Lake, windows: list[datetime]
) -> Iterator[tuple[datetime, StoredSnapshot, pl.DataFrame]]:
    """Each window's stored snapshot and the Delta latest as of its `taken_at`, in the
    order of `taken_at`. A range reads the position log once (`iter_latest`)."""
    snaps = store.read_snapshots(window_starts=windows)
    missing = [window_key(w) for w, snap in snaps.items() if snap is None]
    if missing:
        raise dg.Failure(
            description=(
                f"window(s) {', '.join(missing)} have no stored IB snapshot; materialize "
                "ib_position_snapshot for them first (only possible while a window is the "
                "newest closed one)."
            )
        )
    by_time: dict[datetime, list[tuple[datetime, StoredSnapshot]]] = {}
    for window, snap in snaps.items():
        assert snap is not None
        by_time.setdefault(snap.taken_at, []).append((window, snap))
    try:
        for as_of, latest in store.iter_latest(as_ofs=list(by_time)):
            for window, snap in by_time[as_of]:
                yield window, snap, latest
    except LakeError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _count(rows: pl.DataFrame, kind: DiscrepancyType) -> int:
    return rows.filter(pl.col("type") == kind.value).height


def _open_in_scope(frame: pl.DataFrame, scope: tuple[str, ...] | None, tol: float) -> int:
    rows = frame.filter(pl.col("position").abs() > tol)
    if scope is not None and "sec_type" in rows.columns:
        rows = rows.filter(pl.col("sec_type").is_null() | pl.col("sec_type").is_in(scope))
    return rows.height


def _check_results(found: pl.DataFrame) -> list[dg.AssetCheckResult]:
    columns = ["window_start", "account", "symbol", "ib_position", "delta_position", "details"]
    naked = found.filter(pl.col("type") == DiscrepancyType.NAKED_POSITION.value)
    results = [
        dg.AssetCheckResult(
            check_name=NAKED_CHECK,
            passed=naked.is_empty(),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "naked_count": naked.height,
                "naked_positions": md.markdown_table(naked, columns, empty="No naked positions."),
            },
        )
    ]
    for kind, (name, _) in WARN_CHECKS.items():
        rows = found.filter(pl.col("type") == kind.value)
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=rows.is_empty(),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "count": rows.height,
                    "positions": md.markdown_table(rows, columns, empty="None."),
                },
            )
        )
    return results


def _snapshot_metadata(taken: list[tuple[StoredSnapshot, bool]], store: Lake) -> dict[str, object]:
    last, live = taken[-1]
    metadata: dict[str, object] = {
        "dagster/row_count": last.positions.height,
        "open_positions": last.positions.filter(pl.col("position") != 0).height,
        "taken_at": md.timestamp(last.taken_at),
        "snapshot_duration_s": round(last.duration_s, 3),
        "source": "live snapshot" if live else "stored snapshot (reused)",
        "accounts": dg.MetadataValue.json(list(last.accounts)),
        "positions": md.markdown_table(
            last.positions,
            ["account", "symbol", "sec_type", "expiry", "strike", "right", "position"],
            empty="IB reports no positions (a complete, empty answer).",
        ),
        "table": dg.MetadataValue.path(store.uri(paths.IB_POSITION_SNAPSHOTS)),
        "dagster/column_schema": md.column_schema(schemas.IB_POSITION_SNAPSHOTS),
    }
    if last.positions.height:
        metadata["positions_per_account"] = md.per_account(last.positions)
    if len(taken) > 1:
        metadata["windows"] = len(taken)
        metadata["live_snapshots"] = sum(was_live for _, was_live in taken)
    return metadata


def _never_snapshotted(windows: list[datetime], now: datetime) -> str:
    keys = ", ".join(window_key(w) for w in windows[:5])
    more = f" and {len(windows) - 5} more" if len(windows) > 5 else ""
    return (
        f"No IB snapshot was stored for window(s) {keys}{more}, and IB can only report "
        f"positions now ({now:%Y-%m-%d %H:%M} UTC): a past window that was never "
        "snapshotted (the pipeline was down) cannot be reconstructed. Backfill only "
        "windows that were snapshotted (ib_position_snapshots / ib_snapshot_log), or "
        "materialize the newest closed window to take a fresh snapshot."
    )
