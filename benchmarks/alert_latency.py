"""Claim: a naked leg pages the on-call trader within 30 s (p95; 20 s median) of the close
of its window (README, "Alerts": the alert sensors look every 5 s). Measured with the
real daemon, the emulator and a local JSON webhook, from the window's judgment
(simulated boundaries) and from its close (real ones); prints each alert's time to page,
the median, p95 and max beside the goal, and where the time went.

    .venv/bin/python benchmarks/alert_latency.py                            # ~10-14 min
    .venv/bin/python benchmarks/alert_latency.py --rounds 5 --scheduled 0   # ~5-7 min
    .venv/bin/python benchmarks/alert_latency.py --rounds 0 --scheduled 10 --budget-s 3600

Setup (not timed): a temp DAGSTER_HOME (`prepare_home`) and lake holding the demo's
position log, the emulator serving the demo portfolio (so DU222 SPY 580 P is a naked
leg), a webhook on 127.0.0.1 receiving Apprise's `json://` posts, and `dagster-daemon
run` on the project's code location (partitions from 2 h back), each alert sensor
ticked once before anything is timed.

A round is a simulated boundary: open the naked leg (a `position_updates` row of -2
dated just before the newest window's snapshot) and re-judge that window (`run_windows`
in this process, on the daemon's instance): the daemon's `discrepancy_alert_sensor`
pages CRITICAL; then close it (a row of 0) and re-judge: it pages RESOLVED. Each is
timed from the window's judgment (the `position_discrepancies` materialization the
sensor reads) and from the run's end, to the webhook's receipt. Each step first waits a
random 0-30 s (`--seed`): steps that started right after the last alert would all land
at the same phase of the sensor's 30 s interval and time only its worst case.

A scheduled sample is the real thing: shortly before a 5-minute boundary the leg is
opened (a row dated now); at the boundary the daemon's schedule launches the run of the
window that has just closed, which snapshots IB live and judges it. Timed as above and
also from the window's close, with where that time went: the schedule's tick (the run
created), the run's start (taken off the queue, its worker process started), IB
snapshotted, the settle and the confirming snapshot (taken after `V6_CONFIRM_AFTER_S` and
settled), the blocking check's result stored, the sensor's tick that sent the alert, and the
delivery (the tick's start to the webhook's receipt). A round then closes the leg again.

`--budget-s` bounds when a new step may start; each wait in a step is bounded too
(an alert: 120 s; a scheduled run: 180 s). The daemon, its code server and run workers
are stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from v6_pipeline.defs.checks import ASSET, NAKED_CHECK
from v6_pipeline.defs.jobs import reconciliation_job
from v6_pipeline.defs.partitions import WINDOW, last_closed_window, window_key, window_start
from v6_pipeline.defs.schedules import reconciliation_schedule
from v6_pipeline.defs.sensors import DISCREPANCY, INTERVAL_S
from v6_pipeline.demo.book import demo_position_updates
from v6_pipeline.ib.gateway import GatewayThread
from v6_pipeline.lake import Lake
from v6_pipeline.run.instance import open_instance, prepare_home
from v6_pipeline.run.runner import EXIT_CRITICAL, EXIT_OK, run_windows
from v6_pipeline_tests.alerts.support import Webhook, webhook
from v6_pipeline_tests.defs.daemon import (
    daemon_env,
    local_defs,
    running_daemon,
    sensor_ticks,
    wait_for_first_ticks,
)
from v6_pipeline_tests.support import DEMO, free_port

GOAL_MEDIAN_S = 20.0  # window close -> page
GOAL_P95_S = 30.0
NAKED_CONID = 500004  # the demo's naked leg: DU222 SPY 2026-12-18 580 P
ALERT_WAIT_S = 120.0  # an alert not received by then is reported missed
SCHEDULE_WAIT_S = 180.0  # a scheduled run's launch (a fresh run worker) and end
GUARD_S = 20.0  # no run of ours this close to a boundary: it would race the schedule
ROUND_S = 120.0  # a round's usual length: less than this to a boundary, prepare for it
POLL_S = 0.1


def next_close(now: datetime) -> datetime:
    """The next 5-minute boundary: when the window open at `now` closes."""
    return last_closed_window(now) + 2 * WINDOW


class Stamped(list):
    """The webhook's bodies, each with the wall time it arrived (`at`, same index)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def append(self, body: dict) -> None:
        self.at.append(time.time())  # first: a reader that sees the body sees its time
        super().append(body)


class MissedAlertError(RuntimeError):
    """An expected alert (or the run that should cause it) did not come in time."""


@dataclass(frozen=True)
class Sample:
    trigger: str  # "round" or "scheduled"
    title: str
    window: str
    judged_to_page: float
    run_end_to_page: float
    close_to_page: float | None  # scheduled runs only
    timeline: dict[str, float] | None = None  # scheduled runs: seconds after the close

    @property
    def kind(self) -> str:
        return self.title.split(":", 1)[0]


class Bench:
    """Drives the lake and the runs; each step waits for the one alert it should cause."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        defs: dg.Definitions,
        lake: Lake,
        hook: Webhook,
        *,
        seed: int,
    ) -> None:
        self.instance, self.defs, self.lake, self.hook = instance, defs, lake, hook
        self.phase = random.Random(seed)
        self.template = demo_position_updates(datetime.now(UTC)).filter(
            pl.col("conid") == NAKED_CONID
        )
        self.last_row_at = datetime.now(UTC)  # every demo row is older
        self.samples: list[Sample] = []
        self.missed: list[str] = []

    # --- the steps ----------------------------------------------------------------------

    def round_step(self, *, naked: bool) -> Sample:
        """Open (or close) the leg as of the newest window's snapshot and re-judge it."""
        time.sleep(self.phase.uniform(0, INTERVAL_S))  # any phase of the sensor's interval
        self.keep_clear_of_boundary()
        key = window_key(last_closed_window(datetime.now(UTC)))
        snap = self.lake.read_snapshot(window_start=window_start(key))
        self.write_leg(-2.0 if naked else 0.0, before=snap.taken_at if snap else None)
        seen = len(self.hook.received)
        outcome = run_windows(self.defs, key, instance=self.instance, log_level="CRITICAL")
        expected = EXIT_CRITICAL if naked else EXIT_OK
        if outcome.exit_code != expected:
            raise RuntimeError(f"run of {key}: exit {outcome.exit_code}, not {expected}")
        return self.sample(seen, "round", key, outcome.run_id, close=None)

    def scheduled_step(self) -> Sample:
        """Open the leg now; the schedule's run of the window closing next finds it."""
        close = next_close(datetime.now(UTC))
        key = window_key(close - WINDOW)
        self.write_leg(-2.0, before=None)
        seen = len(self.hook.received)
        run = self.scheduled_run(key, deadline=close.timestamp() + SCHEDULE_WAIT_S)
        if run is None:
            raise MissedAlertError(f"the schedule ran no run of {key} (see the daemon's log)")
        return self.sample(seen, "scheduled", key, run.dagster_run.run_id, close=close)

    # --- the lake and the runs ----------------------------------------------------------

    def write_leg(self, position: float, *, before: datetime | None) -> None:
        """A `position_updates` row for the leg, newer than every earlier one and, when
        `before` (a stored snapshot's time) is given, older than it; else dated now."""
        at = self.last_row_at + timedelta(milliseconds=1)
        if before is None:
            at = max(at, datetime.now(UTC))
        else:
            at = max(at, before - timedelta(seconds=1))
            if at >= before:
                raise RuntimeError(f"no room for a row before the snapshot at {before}")
        row = self.template.with_columns(
            pl.lit(position).cast(self.template.schema["position"]).alias("position"),
            pl.lit(at).cast(self.template.schema["timestamp"]).alias("timestamp"),
        )
        self.lake.append_position_updates(row)
        self.last_row_at = at

    def keep_clear_of_boundary(self) -> None:
        """Near a boundary, let it pass and the schedule's run of that window finish."""
        now = datetime.now(UTC)
        close = next_close(now)
        if (close - now).total_seconds() >= GUARD_S:
            return
        time.sleep((close - now).total_seconds() + 1)
        self.scheduled_run(window_key(close - WINDOW), deadline=time.time() + SCHEDULE_WAIT_S)

    def scheduled_run(self, key: str, *, deadline: float) -> dg.RunRecord | None:
        """The schedule's run of `key` once it has finished; None if none by `deadline`."""
        tags = {"dagster/partition": key, "dagster/schedule_name": reconciliation_schedule.name}
        while time.time() < deadline:
            records = self.instance.get_run_records(
                dg.RunsFilter(job_name=reconciliation_job.name, tags=tags)
            )
            if records and records[0].dagster_run.is_finished:
                return records[0]
            time.sleep(1)
        return None

    def judged_at(self, key: str, run_id: str) -> float:
        """When run `run_id` judged window `key`: its materialization, read by the sensor."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), asset_partitions=[key]),
            limit=20,
        ).records
        [at] = [r.timestamp for r in records if r.run_id == run_id]
        return at

    def sending_tick(self, paged: float) -> float | None:
        """When the discrepancy sensor's tick that sent the alert received at `paged`
        started: its newest tick that alerted and started before then."""
        deadline = time.time() + 30  # a tick records what it did once it ends
        while time.time() < deadline:
            for tick in sensor_ticks(self.instance, DISCREPANCY):
                if tick.timestamp <= paged and (tick.skip_reason or "").startswith("alerted"):
                    return tick.timestamp
            time.sleep(0.5)
        return None

    def first_event(self, run_id: str, kind: dg.DagsterEventType) -> float | None:
        events = self.instance.all_logs(run_id, of_type=kind)
        return events[0].timestamp if events else None

    def blocking_checked(self, run_id: str) -> float | None:
        """When run `run_id` stored the blocking check's result (the step then fails with
        a `dg.Failure` naming the legs, not Dagster's own check failure): by its name, not
        by its place among the window's check results."""
        kind = dg.DagsterEventType.ASSET_CHECK_EVALUATION
        events = self.instance.all_logs(run_id, of_type=kind)
        return next(
            (
                e.timestamp
                for e in events
                if e.dagster_event
                and e.dagster_event.asset_check_evaluation_data.check_name == NAKED_CHECK
            ),
            None,
        )

    # --- the alert ----------------------------------------------------------------------

    def sample(
        self, seen: int, trigger: str, key: str, run_id: str, *, close: datetime | None
    ) -> Sample:
        """Wait for alert number `seen` (the step's one alert) and time it."""
        received = self.hook.received
        assert isinstance(received, Stamped)
        deadline = time.time() + ALERT_WAIT_S
        while len(received) <= seen and time.time() < deadline:
            time.sleep(POLL_S)
        if len(received) <= seen:
            raise MissedAlertError(
                f"no alert within {ALERT_WAIT_S:.0f} s of {trigger} run {run_id}"
            )
        paged = received.at[seen]
        record = self.instance.get_run_record_by_id(run_id)
        while record and record.end_time is None and time.time() < deadline:
            time.sleep(POLL_S)  # an alert may beat the end of the run that caused it
            record = self.instance.get_run_record_by_id(run_id)
        end = record.end_time if record else None
        judged = self.judged_at(key, run_id)
        timeline = None
        if close is not None and record is not None:
            snap = self.lake.read_snapshot(window_start=window_start(key))
            confirm = self.lake.read_snapshots(
                window_starts=[window_start(key)], confirming=True
            ).get(window_start(key))
            check = self.blocking_checked(run_id)
            moments = {
                "created": record.create_timestamp.timestamp(),
                "launched": self.first_event(run_id, dg.DagsterEventType.RUN_STARTING),
                "started": record.start_time,
                "snapshot": snap.taken_at.timestamp() if snap else None,
                "confirmed": confirm.taken_at.timestamp() if confirm else None,
                "judged": judged,
                "checked": check,
                "ticked": self.sending_tick(paged),
                "paged": paged,
            }
            timeline = {k: v - close.timestamp() for k, v in moments.items() if v is not None}
        sample = Sample(
            trigger=trigger,
            title=received[seen]["title"],
            window=key,
            judged_to_page=paged - judged,
            run_end_to_page=paged - end if end else float("nan"),
            close_to_page=paged - close.timestamp() if close else None,
            timeline=timeline,
        )
        self.samples.append(sample)
        print(f"  {len(self.samples):>2} {row(sample)}", file=sys.stderr, flush=True)
        return sample


# --- the report ---------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def row(s: Sample) -> str:
    return (
        f"{s.trigger:<9} {s.kind:<8} {s.window:<16} {seconds(s.judged_to_page):>12} "
        f"{seconds(s.run_end_to_page):>13} {seconds(s.close_to_page):>11}"
    )


def p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


def spread(label: str, values: list[float], *, goal: bool = False) -> str:
    if not values:
        return f"{label}: no sample"
    said = (
        f"{label}: n={len(values)}, median {statistics.median(values):.1f} s, "
        f"p95 {p95(values):.1f} s, max {max(values):.1f} s"
    )
    if goal:
        met = statistics.median(values) <= GOAL_MEDIAN_S and p95(values) <= GOAL_P95_S
        said += (
            f" (goal median <= {GOAL_MEDIAN_S:.0f} s, p95 <= {GOAL_P95_S:.0f} s: "
            f"{'met' if met else 'MISSED'})"
        )
    return said


# Where the time from a window's close to its page went: (stage, from, to).
STAGES = [
    ("schedule tick (run created)", None, "created"),
    ("run start (queue + worker start-up)", "created", "started"),
    ("IB snapshot", "started", "snapshot"),
    ("settle + confirming snapshot", "snapshot", "confirmed"),
    ("settle + judge + write", "confirmed", "judged"),
    ("blocking check", "judged", "checked"),
    ("to the sensor's tick", "judged", "ticked"),
    ("sensor tick + delivery", "ticked", "paged"),
]


def breakdown(samples: list[Sample]) -> list[str]:
    """Per stage, the median and max over the scheduled samples (seconds)."""
    lines = [f"{'stage':<38} {'median':>7} {'max':>7}"]
    timed = [s.timeline for s in samples if s.timeline]
    for label, start, end in STAGES:
        values = [
            t[end] - (t[start] if start else 0.0)
            for t in timed
            if end in t and (start is None or start in t)
        ]
        if values:
            lines.append(f"{label:<38} {statistics.median(values):>6.1f}s {max(values):>6.1f}s")
    return lines


def report(samples: list[Sample], tick_s: list[float]) -> None:
    header = (
        f"{'#':>3} {'trigger':<9} {'alert':<8} {'window':<16} {'judged→page':>12} "
        f"{'run end→page':>13} {'close→page':>11}"
    )
    print(header)
    print("-" * len(header))
    for i, s in enumerate(samples, 1):
        print(f"{i:>3} {row(s)}")
    print()
    pages = [s for s in samples if s.kind == "CRITICAL"]
    print(spread("naked leg paged, judged → page", [s.judged_to_page for s in pages]))
    print(spread("every alert, judged → page", [s.judged_to_page for s in samples]))
    closes = [s.close_to_page for s in samples if s.close_to_page is not None]
    print(spread("scheduled window, close → page", closes, goal=True))
    if closes:
        print()
        print("\n".join(breakdown(samples)))
    for s in samples:
        if s.timeline:
            steps = ", ".join(f"{k} +{v:.1f} s" for k, v in s.timeline.items())
            print(f"  window {s.window} after its close: {steps}")
    if tick_s:
        print(
            f"sensor interval {INTERVAL_S} s; {DISCREPANCY} ticks: n={len(tick_s)}, "
            f"median {statistics.median(tick_s):.2f} s, max {max(tick_s):.2f} s each"
        )


# --- the run ------------------------------------------------------------------------------


def drive(bench: Bench, *, rounds: int, scheduled: int, until: float) -> None:
    """Rounds and scheduled samples until both counts are reached or time is up."""
    done_rounds = done_scheduled = 0
    while done_rounds < rounds or done_scheduled < scheduled:
        now = datetime.now(UTC)
        to_close = (next_close(now) - now).total_seconds()
        if done_scheduled < scheduled and to_close < ROUND_S:
            if time.time() + to_close + SCHEDULE_WAIT_S > until:
                return
            if to_close < GUARD_S:  # too late to open the leg safely: the next one
                bench.keep_clear_of_boundary()
                continue
            try:
                bench.scheduled_step()
            except MissedAlertError as exc:  # reported, and the next boundary measured
                print(f"  missed: {exc}", file=sys.stderr, flush=True)
                bench.missed.append(str(exc))
            bench.round_step(naked=False)
            done_scheduled += 1
        elif done_rounds < rounds:
            if time.time() + ROUND_S > until:
                return
            bench.round_step(naked=True)
            bench.round_step(naked=False)
            done_rounds += 1
        else:  # only scheduled samples left: wait for the next boundary to near
            time.sleep(max(1.0, to_close - ROUND_S + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="simulated boundaries")
    parser.add_argument("--scheduled", type=int, default=2, help="real boundaries")
    parser.add_argument("--budget-s", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=6, help="of the rounds' random phases")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="v6-alert-latency-"))
    home = prepare_home(tmp / "home")
    lake = Lake(tmp / "lake")
    lake.append_position_updates(demo_position_updates(datetime.now(UTC)))
    log_path = tmp / "daemon.log"
    try:
        with (
            GatewayThread(DEMO) as gateway,
            webhook(hook=Webhook(free_port(), received=Stamped())) as hook,
        ):
            env = daemon_env(home, tmp / "lake", ib_port=gateway.port, alert_url=hook.apprise_url)
            defs = local_defs(env)
            # The instance first: it creates the SQLite tables before the daemon's first use.
            with open_instance(home) as instance, running_daemon(env, log_path) as proc:
                wait_for_first_ticks(instance, proc, log_path)
                print(
                    f"daemon up after {time.time() - started:.0f} s; measuring "
                    f"(budget {args.budget_s:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                bench = Bench(instance, defs, lake, hook, seed=args.seed)
                try:
                    drive(
                        bench,
                        rounds=args.rounds,
                        scheduled=args.scheduled,
                        until=started + args.budget_s,
                    )
                except MissedAlertError as exc:
                    print(f"stopped: {exc}; daemon log: {log_path}", file=sys.stderr)
                    args.keep = True
                ticks = sensor_ticks(instance, "discrepancy_alert_sensor")
                tick_s = [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]
        report(bench.samples, tick_s)
        for missed in bench.missed:
            print(f"MISSED: {missed}")
        print(f"\ntotal {time.time() - started:.0f} s")
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
