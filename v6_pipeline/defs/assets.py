"""The three assets of a 5-minute window, each writing the Delta table it names.

- `ib_position_snapshot`: IB's complete answer, taken live once, while the window is
  the newest closed one, and stored in `ib_position_snapshots` (reused ever after).
- `delta_latest_positions`: what the position log believed as of the snapshot's
  `taken_at`, stored per window in `delta_latest_positions` (the open positions and
  every key IB reported: all that the judgment reads), so the UI and a later reader
  see exactly what each window was judged against.
- `position_discrepancies`: the judgment of those two stored inputs, with its checks. A
  live window's critical candidate is confirmed by a second snapshot (stored in
  `ib_confirming_snapshots`, judged again by any later run of the window); what it does
  not repeat is recorded as RESOLVED_IN_FLIGHT (docs/reconciliation.md, "Fills in flight").

The present and the past: only a live run (one window, the newest closed one) evaluates
the checks, so they show now; a run of past windows leaves each window's verdict on its
own partition (`verdict` leads its metadata) and keeps the checks on the present
(`defs/present.py`). It succeeds when it judged every window, naked ones included: its
`v6/verdict` tag and log name them. A range runs as one run
(`BackfillPolicy.single_run()`) and writes each table in one commit. Windows of a range
that were never snapshotted are reported by key and never judged (the run fails); the
judged windows of the same run keep their results (docs/dagster.md, "Windows, snapshots
and backfills").

A window is judged once its row is in `position_judgment_log`, written after Dagster
recorded its materialization and checks (`lake/snapshots.py`). A run that stops between
the snapshot and that row (its process died, its Dagster database went away) leaves
the window snapshotted but un-judged, and every later judgment names it, with the
command that judges it, until it is judged.
"""

import logging
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.confirm import has_critical
from v6_pipeline.defs import checks, handoff
from v6_pipeline.defs import metadata as md
from v6_pipeline.defs.dead_runs import IN_FLIGHT
from v6_pipeline.defs.partitions import WINDOW, window_key, window_start
from v6_pipeline.defs.present import restate_present
from v6_pipeline.defs.resources import (
    AlertsResource,
    IBGatewayResource,
    LakeResource,
    ReconciliationSettings,
)
from v6_pipeline.ib.errors import IBSnapshotError
from v6_pipeline.judging import (
    JudgedWindow,
    UnmanagedAccountError,
    judge,
    relevant_latest,
)
from v6_pipeline.lake import Lake, paths, schemas
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.lake.snapshots import (
    FailedCheck,
    Judgment,
    JudgmentLog,
    StoredSnapshot,
    UnjudgedWindow,
)
from v6_pipeline.quiet_retry import described, live_deadline, snapshot_through_resets
from v6_pipeline.stream.liveness import StreamLiveness, stream_liveness
from v6_pipeline.stream.status import read_stream_status

# Single-run backfills are the point; their beta status is known.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

GROUP = "reconciliation"
IB_POOL = "ib_gateway"  # dagster.yaml limits it to one step at a time: one IB client
# A scheduled run that starts late (a busy daemon) may still snapshot its window live.
LIVE_GRACE = timedelta(minutes=1)
NAKED_CHECK = checks.NAKED_CHECK
# How far back a judgment looks for windows that were snapshotted and never judged.
UNJUDGED_LOOKBACK = timedelta(days=1)
SNAPSHOTS, DELTA_LATEST = "snapshots", "delta_latest"  # what a step hands on (handoff)
VERDICT_TAG = "v6/verdict"  # on each run that judged windows, for the runs list
_UNJUDGED_SHOWN = 10  # named one per log line; the rest counted
_NAKED_SHOWN = 100  # naked windows a run's summary names (with their leg counts)


def can_snapshot_live(window: datetime, now: datetime) -> bool:
    """Whether `window` may be snapshotted at `now`: it is the newest closed window."""
    end = window + WINDOW
    return end <= now < end + WINDOW + LIVE_GRACE


def reconciliation_assets(windows: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The three assets on the partitions `windows` (built when the code location loads)."""
    partitioned = {
        "partitions_def": windows,
        "group_name": GROUP,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "kinds": {"deltalake", "polars"},
    }

    @dg.asset(
        **partitioned,
        pool=IB_POOL,
        # On the definition too: a range run's per-window metadata leaves it out.
        metadata={"dagster/column_schema": md.column_schema(schemas.IB_POSITION_SNAPSHOTS)},
        description=(
            "Every IB position of every managed account for the window, as IB reported "
            "them in one complete reqPositions answer. Taken live while the window is the "
            "newest closed one; stored in ib_position_snapshots and reused by every later run."
        ),
    )
    def ib_position_snapshot(
        context: dg.AssetExecutionContext,
        ib: IBGatewayResource,
        lake: LakeResource,
        alerts: AlertsResource,
    ) -> dg.MaterializeResult:
        return _snapshot_windows(context, ib, lake.get_lake(), alerts.get_settings().quiet)

    @dg.asset(
        **partitioned,
        deps=[ib_position_snapshot],
        metadata={"dagster/column_schema": md.column_schema(schemas.DELTA_LATEST_POSITIONS)},
        description=(
            "What the Delta Lake position log believes we hold: for each (account, conid) "
            "the latest position_updates row as of the window's IB snapshot (as_of = "
            "taken_at), stored per window (open positions and every key IB reported). "
            "Later rows do not exist for this window, so a backfill is reproducible."
        ),
    )
    def delta_latest_positions(
        context: dg.AssetExecutionContext, lake: LakeResource, settings: ReconciliationSettings
    ) -> dg.MaterializeResult:
        return _latest_windows(context, lake.get_lake(), settings.settle())

    # A multi-asset of one, for `can_subset`: a run of past windows evaluates no check
    # (they tell the present), which an `@asset`'s required check outputs would refuse.
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                checks.ASSET,
                deps=[delta_latest_positions],
                group_name=GROUP,
                kinds={"deltalake", "polars"},
                metadata={
                    "dagster/column_schema": md.column_schema(schemas.POSITION_DISCREPANCIES)
                },
                description=(
                    "One row per discrepancy between the IB snapshot and the Delta latest "
                    "positions of the window: NAKED_POSITION (critical), MISSING_FROM_DELTA, "
                    "POSITION_MISMATCH, STALE_DATA; a live critical candidate is confirmed by "
                    "a second snapshot, and a discrepancy it does not repeat is "
                    "RESOLVED_IN_FLIGHT (info). Each window's verdict leads its partition's "
                    "metadata; the checks show the newest live window. Re-materializing a "
                    "window replaces its rows."
                ),
            )
        ],
        partitions_def=windows,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # A live critical candidate is confirmed by a second snapshot: one IB client.
        pool=IB_POOL,
        check_specs=checks.check_specs(),
        can_subset=True,
    )
    def position_discrepancies(
        context: dg.AssetExecutionContext,
        ib: IBGatewayResource,
        lake: LakeResource,
        settings: ReconciliationSettings,
        alerts: AlertsResource,
    ):  # yields the result, or fails naming the windows that cannot be judged
        quiet = alerts.get_settings().quiet
        yield from _judge_windows(context, ib, lake.get_lake(), settings, quiet)

    return [ib_position_snapshot, delta_latest_positions, position_discrepancies]


def _windows(context: dg.AssetExecutionContext) -> list[datetime]:
    return [window_start(key) for key in context.partition_keys]


def _stored_snapshots(
    context: dg.AssetExecutionContext, store: Lake, windows: list[datetime]
) -> dict[datetime, StoredSnapshot | None]:
    """The windows' stored snapshots: as the snapshot step read them, else from the lake."""
    handed = handoff.take(context.run.run_id, SNAPSHOTS, windows)
    return handed if handed is not None else store.read_snapshots(window_starts=windows)


def _lake_failure(exc: LakeError) -> dg.Failure:
    return dg.Failure(description=str(exc), metadata={"error": type(exc).__name__})


def _snapshot_windows(
    context: dg.AssetExecutionContext, ib: IBGatewayResource, store: Lake, quiet: QuietWindows
) -> dg.MaterializeResult:
    try:
        store.require_position_updates()  # a mistyped lake is reported before any write
        stored = store.read_snapshots(window_starts=_windows(context))
    except LakeError as exc:
        raise _lake_failure(exc) from exc
    now = datetime.now(UTC)
    # Never snapshotted: said here, failed by the judgment step once it has kept the
    # checks on the present (defs/present.py).
    never = [w for w, s in stored.items() if s is None and not can_snapshot_live(w, now)]
    for window, found in stored.items():
        key = window_key(window)
        if window in never:
            context.add_asset_metadata(_no_snapshot_metadata(), partition_key=key)
            continue
        live = found is None
        if found is None:
            context.log.info(f"window {key}: taking a live snapshot from {ib.host}:{ib.port}")
            try:
                # Before the snapshot is stored: until its judgment is recorded, the
                # window counts as un-judged (a window older than the log does not).
                JudgmentLog(store.lake_dir).create()
            except LakeError as exc:
                raise _lake_failure(exc) from exc
            found = _take_live(ib, store, window, quiet=quiet, log=context.log)
        elif len(stored) == 1:  # a range says it once, below: each line is a stored event
            context.log.info(
                f"window {key}: reusing the snapshot taken at {found.taken_at:%H:%M:%S} UTC "
                f"({found.positions.height} positions)"
            )
        context.add_asset_metadata(
            md.snapshot_metadata(
                found,
                live=live,
                table=store.uri(paths.IB_POSITION_SNAPSHOTS),
                full=len(stored) == 1,
            ),
            partition_key=key,
        )
    if not any(s is None and w not in never for w, s in stored.items()):
        # As read from the lake (none taken live here): the next steps need not read them.
        handoff.hand_on(context.run.run_id, SNAPSHOTS, stored)
    if len(stored) > 1:
        reused = sum(1 for snap in stored.values() if snap is not None)
        context.log.info(f"reusing the stored snapshots of {reused} of {len(stored)} windows")
    if never:
        context.log.warning(never_snapshotted(never, now))
    return dg.MaterializeResult()


def _take_live(
    ib: IBGatewayResource,
    store: Lake,
    window: datetime,
    *,
    quiet: QuietWindows,
    log: logging.Logger | logging.LoggerAdapter,
    confirming: bool = False,
) -> StoredSnapshot:
    """A live snapshot of `window` (or its confirming one), stored; retried through IB's
    reset hours (`V6_IB_QUIET_WINDOWS`) until the window's deadline."""
    try:
        snap = snapshot_through_resets(
            ib.snapshot, quiet=quiet, deadline=live_deadline(window), log=log
        )
    except IBSnapshotError as exc:
        raise dg.Failure(
            description=described(exc),
            metadata={"error": type(exc).__name__, "gateway": f"{ib.host}:{ib.port}"},
        ) from exc
    live = StoredSnapshot(window, snap.taken_at, snap.accounts, snap.duration_s, snap.positions)
    try:
        store.write_snapshot(
            live.positions,
            window_start=window,
            taken_at=live.taken_at,
            accounts=live.accounts,
            duration_s=live.duration_s,
            confirming=confirming,
        )
    except LakeError as exc:
        raise _lake_failure(exc) from exc
    return live


def _settle(
    context: dg.AssetExecutionContext, taken_at: datetime, settle: timedelta, *, what: str
) -> None:
    """Wait until `settle` after `taken_at`: a fill the streamer is still writing (its
    event time before `taken_at`) is then in Delta. A past window does not wait."""
    wait = (taken_at + settle - datetime.now(UTC)).total_seconds()
    if wait > 0:
        context.log.info(f"settling {wait:.1f} s before reading Delta as of {what} (V6_SETTLE_S)")
        time.sleep(wait)


def _latest_windows(
    context: dg.AssetExecutionContext, store: Lake, settle: timedelta
) -> dg.MaterializeResult:
    started = time.perf_counter()
    try:
        snaps = _stored_snapshots(context, store, _windows(context))
        taken = {w: s for w, s in snaps.items() if s is not None}
        if taken:
            newest = max(s.taken_at for s in taken.values())
            _settle(context, newest, settle, what="the snapshot")
            started = time.perf_counter()
        by_time: dict[datetime, list[StoredSnapshot]] = {}
        for snap in taken.values():
            by_time.setdefault(snap.taken_at, []).append(snap)
        believed: dict[datetime, pl.DataFrame] = {}
        for as_of, latest in store.iter_latest(as_ofs=list(by_time)):
            for snap in by_time[as_of]:
                believed[snap.window_start] = relevant_latest(snap, latest)
        if believed:
            written = store.write_delta_latest_of(
                pl.concat(believed.values()), window_starts=list(taken)
            )
            # As committed, as the judgment step would read it back.
            handoff.hand_on(context.run.run_id, DELTA_LATEST, written)
    except LakeError as exc:
        raise _lake_failure(exc) from exc
    table = store.uri(paths.DELTA_LATEST_POSITIONS)
    for window in snaps:
        key = window_key(window)
        metadata = (
            md.latest_metadata(
                believed[window], as_of=taken[window].taken_at, table=table, full=len(snaps) == 1
            )
            if window in believed
            else _no_snapshot_metadata()
        )
        context.add_asset_metadata(metadata, partition_key=key)
    read_s = time.perf_counter() - started
    context.log.info(f"read the position log as of {len(by_time)} snapshot(s) in {read_s:.2f} s")
    return dg.MaterializeResult()


def _judge(
    snap: StoredSnapshot,
    latest: pl.DataFrame,
    settings: ReconciliationSettings,
    ib: IBGatewayResource,
    *,
    live: bool,
) -> JudgedWindow:
    try:
        return judge(snap, latest, settings=settings, account_filter=ib.account_filter(), live=live)
    except UnmanagedAccountError as exc:  # a setting to correct: a sentence, no traceback
        raise dg.Failure(description=str(exc), metadata={"error": type(exc).__name__}) from exc


def _judge_windows(
    context: dg.AssetExecutionContext,
    ib: IBGatewayResource,
    store: Lake,
    settings: ReconciliationSettings,
    quiet: QuietWindows,
):
    windows = _windows(context)
    now = datetime.now(UTC)
    judgments = JudgmentLog(store.lake_dir)
    try:
        snaps = _stored_snapshots(context, store, windows)
        taken = {w: s for w, s in snaps.items() if s is not None}
        stored_latest = handoff.take(
            context.run.run_id, DELTA_LATEST, list(taken)
        ) or store.read_delta_latest_of(window_starts=list(taken))
        confirming = store.read_snapshots(window_starts=list(taken), confirming=True)
        unjudged = _unjudged_elsewhere(context, judgments, windows, now)
    except LakeError as exc:
        raise _lake_failure(exc) from exc
    _log_unjudged(context, unjudged)
    single = len(windows) == 1
    judged = [
        _judge(
            snap,
            stored_latest[window],
            settings,
            ib,
            live=single and can_snapshot_live(window, now),
        )
        for window, snap in taken.items()
    ]
    # A live critical candidate gets its confirming snapshot now; a stored one (a
    # re-run, a backfill) is judged again, so the confirmed verdict is reproduced.
    confirm = _Confirmation(context, ib, store, settings, quiet)
    judged = [confirm(j, confirming.get(j.snapshot.window_start)) for j in judged]
    try:
        if judged:
            # Un-judged until this judgment is recorded: a run that stops from here on
            # leaves the windows named as un-judged, never judged by rows alone.
            judgments.clear(list(taken))
            store.write_discrepancies_of(
                pl.concat([j.rows for j in judged]), window_starts=list(taken)
            )
    except LakeError as exc:
        raise _lake_failure(exc) from exc
    table = store.uri(paths.POSITION_DISCREPANCIES)
    streams = _stream_liveness(store, [j.snapshot.taken_at for j in judged], settings)
    verdicts = {}
    for window in judged:
        if single:
            _log_window(context, window)
        verdicts[window.key] = checks.window_verdicts(
            window.key,
            window.rows,
            window.unmanaged,
            streams.get(window.snapshot.taken_at),
            full=single,
        )
    present = single and bool(judged) and judged[0].live
    metadata = {
        window.key: {
            # First: the line a person reads on the window's partition page.
            "verdict": checks.verdict_line(verdicts[window.key]),
            "failed_checks": checks.failed_checks(verdicts[window.key]),
            **md.judged_metadata(window, settings=settings, table=table, full=single),
            **(md.unjudged_metadata(unjudged, lookback=UNJUDGED_LOOKBACK) if single else {}),
        }
        for window in judged
    }
    if present:
        [window] = judged
        context.add_asset_metadata(metadata[window.key], partition_key=window.key)
        selected = {key.name for key in context.selected_asset_check_keys}
        yield dg.MaterializeResult(
            check_results=[v.result() for v in verdicts[window.key] if v.check in selected]
        )
        # Dagster stored the materialization and its checks: the window is judged.
        _record(context, judgments, judged, verdicts)
        _tag_verdict(context, judged)
        # Before Dagster's own "1 blocking asset check failed": the banner names the legs.
        failure = checks.naked_failure(window.key, verdicts[window.key])
        if failure is not None:
            raise failure
        return
    # The past: each window's verdict on its own partition; the checks keep the present.
    never = [w for w in windows if w not in taken]
    if never:
        # The judged windows keep their materialization; the rest fail. Yielded, not
        # added: stored at once, before the step fails.
        for window in judged:
            yield dg.AssetMaterialization(
                asset_key=checks.ASSET, partition=window.key, metadata=metadata[window.key]
            )
    else:
        for window in judged:
            context.add_asset_metadata(metadata[window.key], partition_key=window.key)
        yield dg.MaterializeResult()
    _record(context, judgments, judged, verdicts)
    if judged:
        # One line for the run, not one per window (each line is a stored event, 288 a
        # day): the naked windows by key; their legs lead each window's own page.
        summary = _range_summary(judged)
        (context.log.error if any(j.naked().height for j in judged) else context.log.info)(summary)
        _tag_verdict(context, judged)
    restated = restate_present(context, [spec.name for spec in checks.check_specs()])
    context.log.info(
        "past windows judged: the checks keep the newest live window's verdict"
        + (f" (re-stated: {len(restated)} check(s))" if restated else " (none to re-state yet)")
    )
    if never:
        raise dg.Failure(description=never_snapshotted(never, now))


def _tag_verdict(context: dg.AssetExecutionContext, judged: list[JudgedWindow]) -> None:
    """The run's verdict as a tag, for the runs list: `v6/verdict`."""
    naked = sum(1 for window in judged if window.naked().height)
    verdict = f"naked in {naked} of {len(judged)}" if naked else f"no naked ({len(judged)} judged)"
    context.instance.add_run_tags(context.run.run_id, {VERDICT_TAG: verdict})


def _record(
    context: dg.AssetExecutionContext,
    judgments: JudgmentLog,
    judged: list[JudgedWindow],
    verdicts: dict[str, list[checks.Verdict]],
) -> None:
    """Write the judged windows' rows of `position_judgment_log`: only once Dagster has
    stored their materializations and verdicts (the alert sensors read those)."""
    now = datetime.now(UTC)
    try:
        judgments.record([_judgment(w, verdicts[w.key], context.run.run_id, now) for w in judged])
    except LakeError as exc:
        raise _lake_failure(exc) from exc


def _judgment(
    window: JudgedWindow, verdicts: list[checks.Verdict], run_id: str, now: datetime
) -> Judgment:
    return Judgment(
        window_start=window.snapshot.window_start,
        as_of=window.snapshot.taken_at,
        judged_at=now,
        discrepancy_count=window.rows.height,
        naked_count=window.naked().height,
        confirmed_at=window.confirming.taken_at if window.confirming else None,
        failed_checks=tuple(_failed(v) for v in verdicts if not v.passed),
        run_id=run_id,
    )


def _failed(verdict: checks.Verdict) -> FailedCheck:
    return FailedCheck(verdict.check, verdict.severity.value, checks.failed_sentence(verdict))


def _unjudged_elsewhere(
    context: dg.AssetExecutionContext,
    judgments: JudgmentLog,
    windows: list[datetime],
    now: datetime,
) -> list[UnjudgedWindow]:
    """Windows of the last `UNJUDGED_LOOKBACK` that were snapshotted and never judged,
    other than this run's and those another run is judging now."""
    found = judgments.unjudged(since=now - UNJUDGED_LOOKBACK, until=now)
    if not found:
        return []
    busy = set(windows) | _in_flight_windows(context)
    return [u for u in found if u.window_start not in busy]


def _in_flight_windows(context: dg.AssetExecutionContext) -> set[datetime]:
    """The windows of the other one-window runs still in flight (a range never snapshots)."""
    runs = context.instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_FLIGHT)))
    found = set()
    for run in runs:
        key = run.tags.get("dagster/partition")
        if run.run_id == context.run.run_id or not key:
            continue
        try:
            found.add(window_start(key))
        except ValueError:
            continue  # another job's partitions
    return found


def _log_unjudged(context: dg.AssetExecutionContext, unjudged: list[UnjudgedWindow]) -> None:
    for window in unjudged[:_UNJUDGED_SHOWN]:
        context.log.warning(md.unjudged_sentence(window))
    if len(unjudged) > _UNJUDGED_SHOWN:
        context.log.warning(
            f"and {len(unjudged) - _UNJUDGED_SHOWN} more window(s) snapshotted but never judged "
            f"since {window_key(unjudged[_UNJUDGED_SHOWN].window_start)}: re-run them with "
            "`v6 reconcile --window FIRST --to LAST`"
        )


@dataclass(frozen=True)
class _Confirmation:
    """A window's judgment confirmed by a second snapshot, where there is or must be one."""

    context: dg.AssetExecutionContext
    ib: IBGatewayResource
    store: Lake
    settings: ReconciliationSettings
    quiet: QuietWindows

    def __call__(self, first: JudgedWindow, stored: StoredSnapshot | None) -> JudgedWindow:
        second = stored
        if second is None and first.live and has_critical(first.rows):
            second = self._take(first)
        if second is None:
            return first
        try:
            latest = self.store.read_latest(as_of=second.taken_at)
        except LakeError as exc:
            raise _lake_failure(exc) from exc
        again = _judge(
            second, relevant_latest(second, latest), self.settings, self.ib, live=first.live
        )
        confirmed = first.confirmed_by(again)
        self.context.log.info(
            f"window {first.key}: confirming snapshot at {second.taken_at:%H:%M:%S} UTC: "
            f"{confirmed.naked().height} of {first.naked().height} naked leg(s) confirmed, "
            f"{confirmed.resolved_in_flight().height} discrepancy(ies) resolved in flight"
        )
        return confirmed

    def _take(self, first: JudgedWindow) -> StoredSnapshot | None:
        """The confirming snapshot, `V6_CONFIRM_AFTER_S` after the first and settled; None
        (the verdict stands unconfirmed) when IB cannot give one."""
        key, taken_at = first.key, first.snapshot.taken_at
        wait = (taken_at + self.settings.confirm_after() - datetime.now(UTC)).total_seconds()
        self.context.log.warning(
            f"window {key}: {first.naked().height} naked candidate(s); taking a confirming "
            f"snapshot in {max(wait, 0):.1f} s (V6_CONFIRM_AFTER_S)"
        )
        if wait > 0:
            time.sleep(wait)
        window = first.snapshot.window_start
        try:
            second = _take_live(
                self.ib, self.store, window, quiet=self.quiet, log=self.context.log, confirming=True
            )
        except dg.Failure as failure:
            # A missed alarm is worse than an unconfirmed one: the first verdict stands.
            self.context.log.error(
                f"window {key}: no confirming snapshot ({failure.description}); the "
                "verdict stands unconfirmed"
            )
            return None
        _settle(self.context, second.taken_at, self.settings.settle(), what="the confirmation")
        return second


def _stream_liveness(
    store: Lake, as_ofs: list[datetime], settings: ReconciliationSettings
) -> dict[datetime, StreamLiveness]:
    """`v6 stream`'s liveness at each `as_of`, from one read of `stream_status`."""
    dead_after = settings.stream_dead_after()
    if dead_after is None or not as_ofs:
        return {}
    status = read_stream_status(
        store.lake_dir, since=min(as_ofs) - 2 * dead_after, until=max(as_ofs)
    )
    return {a: stream_liveness(status, as_of=a, dead_after=dead_after) for a in as_ofs}


def _log_window(context: dg.AssetExecutionContext, window: JudgedWindow) -> None:
    """A one-window run's lines: its counts, each naked leg (the run page names them: no
    stack trace needed to act), and accounts left unjudged. A range says it once
    (`_range_summary`); each window's page leads with its verdict."""
    naked = window.naked()
    context.log.info(
        f"window {window.key}: {window.rows.height} discrepancies ({naked.height} naked) as of "
        f"{window.snapshot.taken_at:%H:%M:%S} UTC"
    )
    for details in naked["details"]:
        context.log.error(f"window {window.key}: {details}")
    if window.unmanaged.height:
        accounts = ", ".join(sorted(set(window.unmanaged["account"])))
        context.log.warning(
            f"window {window.key}: {window.unmanaged.height} open Delta position(s) in "
            f"account(s) {accounts} were not judged: the IB answer does not cover them"
        )


def _range_summary(judged: list[JudgedWindow]) -> str:
    rows = sum(j.rows.height for j in judged)
    naked_by_window = {j.key: j.naked().height for j in judged}
    naked = sum(naked_by_window.values())
    failing = [f"{key} ({count})" for key, count in naked_by_window.items() if count]
    shown = ", ".join(failing[:_NAKED_SHOWN])
    more = f" and {len(failing) - _NAKED_SHOWN} more" if len(failing) > _NAKED_SHOWN else ""
    return (
        f"{len(judged)} window(s) judged: {rows} discrepancies, {naked} naked leg(s) in "
        f"{len(failing)} window(s){': ' + shown + more if failing else ''}"
    )


def _no_snapshot_metadata() -> dict[str, object]:
    return {
        "dagster/row_count": 0,
        "source": "none: this window was never snapshotted and cannot be judged",
    }


def never_snapshotted(windows: list[datetime], now: datetime) -> str:
    keys = ", ".join(window_key(w) for w in windows[:5])
    more = f" and {len(windows) - 5} more" if len(windows) > 5 else ""
    return (
        f"No IB snapshot was stored for window(s) {keys}{more}, and IB can only report "
        f"positions now ({now:%Y-%m-%d %H:%M} UTC): a past window that was never "
        "snapshotted (the pipeline was down) cannot be reconstructed, so it was not judged. "
        "Backfill only windows that were snapshotted (ib_position_snapshots / "
        "ib_snapshot_log), or materialize the newest closed window to take a fresh snapshot."
    )
