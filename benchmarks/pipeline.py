"""Claim: one 5-minute window end to end (10k IB positions, 10M rows of Delta history) in
under 10 s wall on the 2-core machine, and a 288-window (one day) backfill in one run in
under 5 minutes. Prints each stage's time beside its target.

    .venv/bin/python benchmarks/pipeline.py                                   # full size
    .venv/bin/python benchmarks/pipeline.py --rows 200000 --positions 2000 --windows 12
    .venv/bin/python benchmarks/pipeline.py --lake s3://BUCKET/v6/lake ...     # and on S3
    .venv/bin/python benchmarks/pipeline.py --moto ...   # S3 = moto's server on loopback
    .venv/bin/python benchmarks/pipeline.py --backfill-day                   # from a shell
    .venv/bin/python benchmarks/pipeline.py --backfill-day --days 7 --instances sqlite,pg

`--backfill-day` (issue #21) times one day's backfill as an operator runs it from a shell,
`v6 reconcile --window D-00:00 --to D-23:55` (288 windows; D = the previous UTC day, or
`--days N` ending with it), on several Dagster instances side by side (`--instances`,
default `sqlite,pg,pg-batch`): `sqlite`, a fresh DAGSTER_HOME that `v6 reconcile` fills
with the project's dagster.yaml (embedded SQLite); `pg`, deploy/dagster.yaml on a
PostgreSQL 15 that the benchmark starts with initdb/pg_ctl on a free loopback port
(server defaults, fsync on; `--pg-no-fsync` as the tests) and stops at the end,
DAGSTER_EVENT_BATCH_SIZE unset; `pg-batch`, the same with DAGSTER_EVENT_BATCH_SIZE =
`--batch-size` (50); `sqlite-batch`. The lake is set up once (`--rows` 2M, `--positions`
10k, as below, every window's snapshot stored beforehand) and each column runs on its
own copy of it and a fresh instance whose tables exist before the clock starts. For each
column it prints the command's wall time (and the run's part of it, per step) beside
the targets (a day: 20 s on SQLite, 10 s on PostgreSQL; a week: 2 minutes), and the
run's events read back from the instance, per DagsterEventType: their count, and the
median and sum of the time from each to the run's next event (what storing it, and
whatever ran before the next, cost).

`--lake s3://...` runs everything twice, on local disk and on that lake (the `AWS_*`
settings from the environment; the prefix should be empty), and prints both columns side
by side. `--moto` serves the S3 API from moto's server (`moto[server]`, the dev extra) on
a free loopback port with a fresh bucket: a Python emulator, slower per request than a
real store, so its column shows what the object-store round trips cost, not AWS's figures.

Setup (timed apart, not part of the claim): a temp lake whose `position_updates` holds
`--rows` rows of 50k keys written in many appends by `read_latest.generate` (a year of
churn ending the day before the backfilled day), then a settling commit that leaves
`--positions` of those keys open at IB's quantities and the rest closed, then a
streamer's trickle up to now that keeps the books in agreement, apart from a few planted
discrepancies (NAKED_POSITION, POSITION_MISMATCH, MISSING_FROM_DELTA: the run fails its
blocking check, as it should). The emulator (`GatewayThread`) serves the IB side; a temp
DAGSTER_HOME holds the Dagster instance.

Warm-up: the first `read_latest` (it builds its checkpoint), then a small append.

The claim: `run_windows` for the newest closed window (a live snapshot), then one run
over the previous UTC day's windows, whose snapshots are stored beforehand from one real
snapshot (IB can only be asked "now"). Stage times come from the run's event log (step
start to success/failure; per window from the steps' per-window log lines); the backfill
runs in a child process so that `--backfill-timeout-s` can bound it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import read_latest as history  # benchmarks/ is on sys.path when this script runs
from deltalake import DeltaTable, write_deltalake

KEYS = 50_000
SYMBOLS = 20
ACCOUNTS = ("DU111", "DU222")  # read_latest's accounts: even keys DU111, odd keys DU222
WINDOW = timedelta(minutes=5)
LIVE_TARGET_S = 10.0
BACKFILL_TARGET_S = 300.0
DAY_WINDOWS = 288
STEPS = ("ib_position_snapshot", "delta_latest_positions", "position_discrepancies")
PLANTED = {"NAKED_POSITION": 2, "POSITION_MISMATCH": 3, "MISSING_FROM_DELTA": 3}
# A streamer's pace: rows per simulated minute, one append per TRICKLE_EVERY.
TRICKLE_ROWS_PER_MIN = 20
TRICKLE_EVERY = timedelta(minutes=30)
WINDOW_LINE = re.compile(r"window (\d{4}-\d{2}-\d{2}-\d{2}:\d{2}):")


# --- the books --------------------------------------------------------------------------


@dataclass
class Books:
    """What IB holds and what Delta should say after the settling commit, per key."""

    target: np.ndarray  # per generator key: the quantity Delta settles on
    ib_keys: np.ndarray  # generator keys IB holds (agreeing or mismatched)
    ib_qty: np.ndarray  # IB's quantity for each of ib_keys
    planted: np.ndarray  # keys the trickle must not touch
    missing: int  # IB positions with no key in the history (MISSING_FROM_DELTA)


def plan_books(positions: int, seed: int) -> Books:
    rng = np.random.default_rng(seed)
    missing = PLANTED["MISSING_FROM_DELTA"]
    held = positions - missing
    chosen = rng.permutation(KEYS)
    ib_keys = np.sort(chosen[:held])
    naked = chosen[held : held + PLANTED["NAKED_POSITION"]]
    qty = rng.integers(1, 11, held).astype(np.float64) * rng.choice([-1.0, 1.0], held)
    target = np.zeros(KEYS)
    target[ib_keys] = qty
    mismatched = ib_keys[: PLANTED["POSITION_MISMATCH"]]
    target[mismatched] += 1.0  # Delta is one contract off
    target[naked] = 3.0  # Delta holds legs IB does not
    return Books(target, ib_keys, qty, np.concatenate([mismatched, naked]), missing)


def rows_for(keys: np.ndarray, ts_us: np.ndarray, books: Books, seed: int) -> pl.DataFrame:
    """`position_updates` rows of `keys` at their settled quantity (read_latest's contracts)."""
    rng = np.random.default_rng(seed)
    frame = history._frame(keys, ts_us, rng, SYMBOLS)
    return frame.with_columns(position=pl.Series(books.target[keys]))


def append(uri: str, frame: pl.DataFrame) -> None:
    from v6_pipeline.lake import schemas
    from v6_pipeline.lake.storage import storage_options

    write_deltalake(
        uri,
        frame.to_arrow().cast(schemas.POSITION_UPDATES),
        mode="append",
        storage_options=storage_options(uri),
    )


def us(at: datetime) -> int:
    return int(at.timestamp() * 1e6)


def settle_and_trickle(uri: str, books: Books, settled_at: datetime, until: datetime) -> int:
    """One commit settling every key, then a streamer's agreeing appends up to `until`."""
    keys = np.arange(KEYS)
    append(uri, rows_for(keys, np.full(KEYS, us(settled_at)), books, seed=10))
    free = np.setdiff1d(keys, books.planted)
    rng = np.random.default_rng(11)
    start, commits = settled_at + timedelta(minutes=1), 1
    while start < until:
        end = min(start + TRICKLE_EVERY, until)
        n = max(1, int((end - start).total_seconds() / 60 * TRICKLE_ROWS_PER_MIN))
        ts = rng.integers(us(start), us(end), n)
        append(uri, rows_for(rng.choice(free, n), ts, books, seed=12 + commits))
        start, commits = end, commits + 1
    return commits


def streamer_append(uri: str, books: Books, now: datetime, rows: int) -> None:
    """What a streamer writes between two runs: recent agreeing rows, 2% of them late."""
    rng = np.random.default_rng(99)
    free = np.setdiff1d(np.arange(KEYS), books.planted)
    ts = rng.integers(us(now - timedelta(minutes=4)), us(now - timedelta(seconds=5)), rows)
    ts[: rows // 50] -= 6 * 3600 * 10**6
    append(uri, rows_for(rng.choice(free, rows), ts, books, seed=100))


def portfolio(books: Books):  # -> Portfolio
    from v6_pipeline.ib.gateway import Portfolio, PortfolioPosition

    contracts = history._frame(
        books.ib_keys, np.zeros(len(books.ib_keys), np.int64), np.random.default_rng(5), SYMBOLS
    )
    rows = [
        PortfolioPosition(
            account=c["account"],
            conid=c["conid"],
            symbol=c["symbol"],
            sec_type=c["sec_type"],
            expiry=c["expiry"],
            strike=c["strike"],
            right=c["right"],
            multiplier=c["multiplier"],
            exchange="SMART",
            currency=c["currency"],
            trading_class=c["symbol"],
            position=float(q),
            avg_cost=123.4,
        )
        for c, q in zip(contracts.iter_rows(named=True), books.ib_qty, strict=True)
    ]
    rows += [
        PortfolioPosition(
            account=ACCOUNTS[0],
            conid=900_000 + i,
            symbol="NEW",
            sec_type="OPT",
            expiry="20270115",
            strike=500.0,
            right="C",
            multiplier="100",
            position=1.0,
        )
        for i in range(books.missing)
    ]
    return Portfolio.of(rows, ACCOUNTS)


# --- reading a run back --------------------------------------------------------------------


@dataclass
class RunTimes:
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds
    step_status: dict[str, str] = field(default_factory=dict)
    run_s: float = 0.0  # RUN_START to RUN_SUCCESS/FAILURE
    per_window: dict[str, list[float]] = field(default_factory=dict)  # step -> seconds each
    windows_done: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, dict[str, object]] = field(default_factory=dict)


def run_times(instance, run_id: str) -> RunTimes:
    from dagster import DagsterEventType as Event

    out = RunTimes()
    started: dict[str, float] = {}
    last_line: dict[str, float] = {}
    run_start = run_end = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        step = entry.step_key
        if event is None:
            if step and WINDOW_LINE.search(entry.user_message or ""):
                if step in last_line:
                    out.per_window.setdefault(step, []).append(entry.timestamp - last_line[step])
                last_line[step] = entry.timestamp
                out.windows_done[step] = out.windows_done.get(step, 0) + 1
            continue
        kind = event.event_type
        if kind == Event.RUN_START:
            run_start = entry.timestamp
        elif kind in (Event.RUN_SUCCESS, Event.RUN_FAILURE):
            run_end = entry.timestamp
        elif kind == Event.STEP_START:
            started[step] = last_line[step] = entry.timestamp
        elif kind in (Event.STEP_SUCCESS, Event.STEP_FAILURE) and step in started:
            out.steps[step] = entry.timestamp - started[step]
            out.step_status[step] = "ok" if kind == Event.STEP_SUCCESS else "failed"
        elif kind == Event.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            out.metadata[mat.asset_key.to_user_string()] = {
                k: v.value for k, v in mat.metadata.items()
            }
    if run_start is not None and run_end is not None:
        out.run_s = run_end - run_start
    return out


# --- the backfill, in a child process ----------------------------------------------------------


def backfill_child(spec: dict[str, object]) -> None:
    import dagster as dg

    from v6_pipeline.definitions import build_defs
    from v6_pipeline.defs.resources import (
        AlertsResource,
        IBGatewayResource,
        LakeResource,
        ReconciliationSettings,
    )
    from v6_pipeline.run.runner import run_windows

    defs = build_defs(
        {
            "ib": IBGatewayResource(port=int(spec["port"]), timeout_s="60"),
            "lake": LakeResource(lake_dir=str(spec["lake_dir"])),
            "settings": ReconciliationSettings(),
            "alerts": AlertsResource(),
        },
        start=datetime.fromisoformat(str(spec["start"])),
    )
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the parent's temp instance
    began = time.perf_counter()
    outcome = run_windows(
        defs, str(spec["first"]), str(spec["last"]), instance=instance, log_level="CRITICAL"
    )
    wall = time.perf_counter() - began
    print(
        json.dumps(
            {
                "run_id": outcome.run_id,
                "wall_s": wall,
                "success": outcome.success,
                "naked_check_passed": outcome.naked_check_passed,
                "failure": outcome.failure,
                "discrepancies": outcome.discrepancies.height,
            }
        )
    )


# --- the benchmark -----------------------------------------------------------------------------


class Table:
    """Stage times of one lake; `side_by_side` prints several lakes' tables as columns."""

    def __init__(self) -> None:
        # (section, stage, seconds, target): a stage is named within its section.
        self.rows: list[tuple[str, str, float | None, float | None]] = []
        self._section = ""

    def add(self, stage: str, seconds: float | None, target: float | None = None) -> None:
        self.rows.append((self._section, stage, seconds, target))

    def section(self, title: str) -> None:
        self._section = title
        self.rows.append((title, f"[{title}]", None, None))


def side_by_side(tables: dict[str, Table]) -> None:
    """One row per stage, with a seconds and a met? column per lake; a stage only one
    lake recorded sits after the stage it followed there."""
    order: list[tuple[str, str]] = []
    for table in tables.values():
        at = 0
        for section, stage, _, _ in table.rows:
            if (section, stage) in order:
                at = order.index((section, stage)) + 1
            else:
                order.insert(at, (section, stage))
                at += 1
    found = {name: {(r[0], r[1]): r[2:] for r in table.rows} for name, table in tables.items()}
    width = max(len(stage) for _, stage in order) + 2
    head = "".join(f"{name + ' s':>12}{'met?':>6}" for name in tables)
    print(f"\n{'stage':<{width}}{head}{'target s':>11}")
    print("-" * (width + 18 * len(tables) + 11))
    for key in order:
        target = next((f[key][1] for f in found.values() if key in f), None)
        cells = ""
        for times in found.values():
            seconds = times[key][0] if key in times else None
            met = "" if target is None or seconds is None else "yes" if seconds < target else "NO"
            cells += f"{'-' if seconds is None else f'{seconds:.2f}':>12}{met:>6}"
        print(f"{key[1]:<{width}}{cells}{'' if target is None else f'< {target:g}':>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, help="position_updates history (10M; --backfill-day: 2M)"
    )
    parser.add_argument("--positions", type=int, default=10_000, help="IB positions")
    parser.add_argument("--windows", type=int, default=DAY_WINDOWS, help="backfill windows")
    parser.add_argument("--appends", type=int, default=200, help="commits of the history")
    parser.add_argument("--streamer-rows", type=int, default=2_000, help="append after warm-up")
    parser.add_argument("--backfill-timeout-s", type=float, default=3600.0)
    parser.add_argument(
        "--lake",
        metavar="URI",
        help="also run on this lake (s3://BUCKET/PREFIX, AWS_* from the environment)",
    )
    parser.add_argument(
        "--moto", action="store_true", help="the S3 lake on moto's server on loopback"
    )
    parser.add_argument("--backfill-child", help=argparse.SUPPRESS)
    shell = parser.add_argument_group("one day from a shell (--backfill-day)")
    shell.add_argument(
        "--backfill-day",
        action="store_true",
        help="time `v6 reconcile --window D-00:00 --to D-23:55` on each --instances",
    )
    shell.add_argument("--days", type=int, default=1, help="days ending the previous UTC day")
    shell.add_argument(
        "--instances",
        default="sqlite,pg,pg-batch",
        help=f"comma-separated columns, of {','.join(INSTANCES)}",
    )
    shell.add_argument("--batch-size", type=int, default=50, help="DAGSTER_EVENT_BATCH_SIZE")
    shell.add_argument(
        "--pg-no-fsync", action="store_true", help="PostgreSQL without fsync (as the tests)"
    )
    args = parser.parse_args()
    if args.backfill_child:
        backfill_child(json.loads(args.backfill_child))
        return
    if args.rows is None:
        args.rows = 2_000_000 if args.backfill_day else 10_000_000
    if args.positions <= sum(PLANTED.values()) or args.positions > KEYS:
        parser.error(f"--positions must be {sum(PLANTED.values()) + 1}..{KEYS}")
    if args.backfill_day:
        if args.days < 1:
            parser.error("--days must be at least 1")
        shell_day(args)
        return
    if not 0 < args.windows <= DAY_WINDOWS:
        parser.error(f"--windows must be 1..{DAY_WINDOWS}")

    root = Path(tempfile.mkdtemp(prefix="v6_bench_pipeline_"))
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    (root / "dagster_home").mkdir()
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    server = None
    try:
        lakes = {"local": str(root / "lake")}
        if args.moto:
            from v6_pipeline_tests.production.s3 import start_s3

            server = start_s3()
            os.environ.update(server.env())  # the backfill's child process reads them too
            lakes["s3"] = args.lake or f"s3://{server.new_bucket()}/v6/lake"
        elif args.lake:
            lakes["s3"] = args.lake
        if "s3" in lakes:
            from v6_pipeline.lake.storage import storage_options

            # read_latest.generate passes delta-rs no options: it reads them from here.
            os.environ.update(storage_options(lakes["s3"]) or {})
        results = {name: bench(args, lake_dir) for name, lake_dir in lakes.items()}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    for name, (_, said) in results.items():
        print(f"\n== {name}: {lakes[name]}\n" + "\n".join(said))
    side_by_side({name: table for name, (table, _) in results.items()})


def bench(args: argparse.Namespace, lake_dir: str) -> tuple[Table, list[str]]:
    """Set up `lake_dir` and run the claim on it: the stage times, and what the runs said."""
    import dagster as dg

    from v6_pipeline.definitions import build_defs
    from v6_pipeline.defs.partitions import last_closed_window, window_key
    from v6_pipeline.defs.resources import (
        AlertsResource,
        IBGatewayResource,
        LakeResource,
        ReconciliationSettings,
    )
    from v6_pipeline.ib.gateway import GatewayThread
    from v6_pipeline.ib.snapshot import take_snapshot
    from v6_pipeline.lake import Lake
    from v6_pipeline.lake.paths import POSITION_UPDATES
    from v6_pipeline.lake.storage import storage_options
    from v6_pipeline.run.runner import run_windows
    from v6_pipeline.settings import IB_CLIENT_ID

    table = Table()
    lake = Lake(lake_dir)
    uri = lake.uri(POSITION_UPDATES)
    now = datetime.now(UTC)
    # The backfilled days: whole UTC days ending at least a day before the newest window.
    day = (last_closed_window(now) - WINDOW * (args.windows + 288)).replace(hour=0, minute=0)
    windows = [day + WINDOW * i for i in range(args.windows)]
    first_key, last_key = window_key(windows[0]), window_key(windows[-1])
    churn_end = day - timedelta(hours=12)
    history.START = churn_end - history.SPAN  # read_latest's year of churn, ending here

    # --- setup (not part of the claim)
    table.section("setup (not claimed)")
    began = time.perf_counter()
    history.generate(uri, rows=args.rows, keys=KEYS, appends=args.appends, symbols=SYMBOLS, seed=1)
    table.add(f"history: {args.rows:,} rows, {args.appends} appends", time.perf_counter() - began)
    books = plan_books(args.positions, seed=3)
    began = time.perf_counter()
    commits = settle_and_trickle(uri, books, churn_end, now - timedelta(minutes=1))
    table.add("settle + streamer trickle to now", time.perf_counter() - began)

    began = time.perf_counter()
    book = portfolio(books)
    gw = GatewayThread(book).start()
    try:
        snap = take_snapshot(gw.host, gw.port, int(IB_CLIENT_ID.default), timeout_s=60)
        assert snap.positions.height == args.positions, snap.positions.height
        table.add(
            f"gateway up + one {args.positions:,}-position snapshot", time.perf_counter() - began
        )
        began = time.perf_counter()
        store_past_snapshots(lake, snap, windows)
        table.add(f"store {len(windows)} past snapshots", time.perf_counter() - began)
        instance = dg.DagsterInstance.get()
        defs = build_defs(
            {
                "ib": IBGatewayResource(port=gw.port, timeout_s="60"),
                "lake": LakeResource(lake_dir=lake_dir),
                "settings": ReconciliationSettings(),
                "alerts": AlertsResource(),
            },
            start=day,
        )

        # --- warm-up
        table.section("warm-up (not claimed)")
        began = time.perf_counter()
        latest = lake.read_latest(as_of=datetime.now(UTC))
        table.add(
            f"first read_latest ({latest.height:,} keys, builds checkpoint)",
            time.perf_counter() - began,
        )
        began = time.perf_counter()
        streamer_append(uri, books, datetime.now(UTC), args.streamer_rows)
        table.add(f"streamer append ({args.streamer_rows:,} rows)", time.perf_counter() - began)
        files = len(DeltaTable(uri, storage_options=storage_options(uri)).file_uris())

        # --- the claim: the newest closed window, live
        key = window_key(last_closed_window(datetime.now(UTC)))
        began = time.perf_counter()
        live = run_windows(defs, key, instance=instance, log_level="CRITICAL")
        live_wall = time.perf_counter() - began
        live_times = run_times(instance, live.run_id)

        # --- its peer: the same window live again with no critical candidate (the naked
        # legs closed in Delta, the stored snapshots forgotten), so nothing is confirmed
        forget_window(lake, last_closed_window(datetime.now(UTC)))
        naked = books.planted[-PLANTED["NAKED_POSITION"] :]
        closes = rows_for(naked, np.full(len(naked), us(datetime.now(UTC))), books, seed=7)
        append(uri, closes.with_columns(position=pl.lit(0.0)))
        began = time.perf_counter()
        plain = run_windows(defs, key, instance=instance, log_level="CRITICAL")
        plain_wall = time.perf_counter() - began
    finally:
        gw.stop()

    table.section("one window (live)")
    for step in STEPS:
        table.add(f"{step} step", live_times.steps.get(step))
    snap_md = live_times.metadata.get("ib_position_snapshot", {})
    table.add(
        "  of which IB snapshot (snapshot_duration_s)", _num(snap_md.get("snapshot_duration_s"))
    )
    table.add("run (RUN_START to end)", live_times.run_s)
    table.add("TOTAL wall (run_windows)", live_wall, LIVE_TARGET_S)
    table.section("the same window, no critical candidate (not confirmed)")
    table.add("TOTAL wall (run_windows)", plain_wall, LIVE_TARGET_S)
    table.add("  confirmation's cost (the difference)", live_wall - plain_wall)

    # --- the claim: a day's backfill in one run
    spec = {
        "port": 1,
        "lake_dir": lake_dir,
        "first": first_key,
        "last": last_key,
        "start": day.isoformat(),
    }
    began = time.perf_counter()
    child = None
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--backfill-child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=args.backfill_timeout_s,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the backfill child failed ({done.returncode})")
        child = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        print(f"\nbackfill stopped after {args.backfill_timeout_s:g} s (--backfill-timeout-s)")
    child_s = time.perf_counter() - began
    runs = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/asset_partition_range_start": first_key}), limit=1
    )
    run_id = child["run_id"] if child else runs[0].dagster_run.run_id if runs else None
    n = len(windows)
    target = BACKFILL_TARGET_S * n / DAY_WINDOWS
    table.section(f"backfill of {n} windows, one run")
    bf = run_times(instance, run_id) if run_id else RunTimes()
    for step in STEPS:
        table.add(f"{step} step", bf.steps.get(step))
    for step in STEPS[1:]:
        if each := bf.per_window.get(step, []):
            table.add(f"  {step} per window (avg)", sum(each) / len(each))
            table.add(f"  {step} slowest window", max(each))
    table.add("run (RUN_START to end)", bf.run_s or None)
    avg = [sum(e) / len(e) for step in STEPS[1:] if (e := bf.per_window.get(step))]
    estimate = None
    if child is None and avg:  # stopped: the finished windows' pace, over all of them
        per_window = sum(avg) if len(avg) == 2 else 2 * avg[0]
        estimate = bf.steps.get(STEPS[0], 0.0) + n * per_window
    wall = child["wall_s"] if child else None
    label = "TOTAL wall (run_windows)" + ("" if n == DAY_WINDOWS else " (target pro rata)")
    table.add(label, wall, target)
    table.add("  per window", wall / n if wall else None)
    if estimate is not None:
        table.add("  ESTIMATED from the finished windows' pace", estimate, target)
    table.add("  child process incl. imports (not claimed)", child_s)

    defaults = ReconciliationSettings()
    said = [
        f"v6_pipeline end to end: {os.cpu_count()} cores, {args.rows:,} position_updates "
        f"rows, {KEYS:,} keys, {args.positions:,} IB positions over {len(ACCOUNTS)} accounts, "
        f"{n} backfill windows; position_updates in {files:,} files after {commits} settling "
        "and trickle appends",
        f"live window {key}: success={live.success} naked_check_passed={live.naked_check_passed} "
        f"discrepancies={live.discrepancies.height} (planted {PLANTED}); steps "
        f"{live_times.step_status}" + (f"\n  failure: {live.failure}" if live.failure else ""),
        f"the same window unconfirmed: naked_check_passed={plain.naked_check_passed} "
        f"discrepancies={plain.discrepancies.height}; settle {defaults.settle_s} s, confirm "
        f"after {defaults.confirm_after_s} s (the defaults)",
    ]
    if child:
        said.append(
            f"backfill {first_key}..{last_key}: success={child['success']} naked_check_passed="
            f"{child['naked_check_passed']} discrepancies={child['discrepancies']}; steps "
            f"{bf.step_status}" + (f"\n  failure: {child['failure']}" if child["failure"] else "")
        )
    return table, said


def store_past_snapshots(lake, snap, windows: list[datetime]) -> None:
    """IB can only be asked "now": `snap` stored as each past window's snapshot, taken
    2 s after the window closed (lake: a v6_pipeline Lake; snap: a Snapshot)."""
    for w in windows:
        lake.write_snapshot(
            snap.positions,
            window_start=w,
            taken_at=w + WINDOW + timedelta(seconds=2),
            accounts=snap.accounts,
            duration_s=snap.duration_s,
        )


def forget_window(lake, window: datetime) -> None:  # lake: v6_pipeline.lake.Lake
    """Make `window` never snapshotted again (its log rows, first and confirming, gone)."""
    from v6_pipeline.lake import paths, schemas
    from v6_pipeline.lake.windows import write_windows

    for name in (paths.IB_SNAPSHOT_LOG, paths.IB_CONFIRMING_SNAPSHOT_LOG):
        empty = pl.DataFrame(schema=pl.from_arrow(schemas.IB_SNAPSHOT_LOG.empty_table()).schema)
        write_windows(lake.uri(name), empty, window_starts=[window], schema=schemas.IB_SNAPSHOT_LOG)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# --- one day from a shell (--backfill-day) -----------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
DAY_TARGET_S = {"sqlite": 20.0, "postgres": 10.0}  # issue #21: one day's backfill
WEEK_TARGET_S = 120.0
INSTANCES = ("sqlite", "pg", "pg-batch", "sqlite-batch")
INSTANCE_HELP = {
    "sqlite": "the embedded SQLite instance (a fresh DAGSTER_HOME, the project's dagster.yaml)",
    "pg": "PostgreSQL, deploy/dagster.yaml, DAGSTER_EVENT_BATCH_SIZE unset",
    "pg-batch": "PostgreSQL, deploy/dagster.yaml, DAGSTER_EVENT_BATCH_SIZE=--batch-size",
    "sqlite-batch": "SQLite with DAGSTER_EVENT_BATCH_SIZE=--batch-size",
}


@dataclass
class Postgres:
    """A throwaway PostgreSQL server on a loopback port (initdb/pg_ctl in a temp dir)."""

    root: Path
    port: int
    user: str | None  # the account it runs as: postgres refuses root

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, cwd=self.root
        )

    def create_database(self, name: str) -> str:
        """A fresh database `name`; its SQLAlchemy URL (psycopg2, as dagster-postgres uses)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
        finally:
            conn.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(durable: bool) -> Postgres:
    """initdb + pg_ctl start on a free loopback port. `durable`: the server's defaults
    (fsync, synchronous commit), as a production database; else the test suite's
    throwaway settings (no fsync)."""
    import pwd

    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH: install PostgreSQL 15 (apt: postgresql)")
    user = None
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _has_user(pwd, u)), None)
        if user is None:
            raise SystemExit("running as root and no postgres/nobody account to run PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="v6_bench_pg_"))
    if user:
        shutil.chown(root, user)
    server = Postgres(root, 0, user)
    init = server._run(
        "initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--locale=C", "--no-sync",
    )  # fmt: skip
    if init.returncode != 0:
        server.stop()
        raise SystemExit(f"initdb failed: {init.stderr.strip()[-800:]}")
    options = "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c timezone=UTC"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    for _ in range(3):  # a free port can be taken between the probe and the bind
        server.port = free_port()
        started = server._run(
            "pg_ctl", "-D", str(root / "data"), "-l", str(root / "server.log"), "-w", "-t", "60",
            "-o", f"{options} -p {server.port}", "start",
        )  # fmt: skip
        if started.returncode == 0:
            return server
    log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
    server.stop()
    raise SystemExit(f"PostgreSQL did not start: {started.stderr.strip()} {log[-800:]}")


def _has_user(pwd, name: str) -> bool:  # pwd: the module
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ for the block (Dagster's instance config reads it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class ShellRun:
    """One `v6 reconcile` of the range on one instance, and its run's events."""

    name: str
    wall_s: float = 0.0
    exit_code: int | None = None
    report: str = ""
    setup_s: float = 0.0  # creating the instance's tables beforehand (not timed in wall_s)
    run_s: float | None = None  # RUN_START to RUN_SUCCESS/FAILURE
    before_s: float | None = None  # command start to the run's first event
    after_s: float | None = None  # the run's last event to the command's exit
    counts: dict[str, int] = field(default_factory=dict)  # event kind -> events
    gaps: dict[str, list[float]] = field(default_factory=dict)  # kind -> s to the next event
    steps: dict[str, float] = field(default_factory=dict)  # step -> STEP_START to its end


def shell_day(args: argparse.Namespace) -> None:
    """Set up one lake, then `v6 reconcile --window D-00:00 --to D-23:55` on each instance,
    each on its own copy of the lake and a fresh instance; print the columns side by side."""
    from v6_pipeline.defs.partitions import window_key
    from v6_pipeline.ib.gateway import GatewayThread
    from v6_pipeline.ib.snapshot import take_snapshot
    from v6_pipeline.lake import Lake
    from v6_pipeline.lake.paths import POSITION_UPDATES
    from v6_pipeline.settings import IB_CLIENT_ID

    names = [n.strip() for n in args.instances.split(",") if n.strip()]
    if unknown := [n for n in names if n not in INSTANCES]:
        raise SystemExit(f"--instances: unknown {unknown}; choose from {', '.join(INSTANCES)}")
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=args.days)  # D-(N-1); D = the previous UTC day
    count = DAY_WINDOWS * args.days if args.days > 1 else args.windows  # --windows: a part
    windows = [first_day + WINDOW * i for i in range(count)]
    first_key, last_key = window_key(windows[0]), window_key(windows[-1])
    churn_end = first_day - timedelta(hours=12)
    history.START = churn_end - history.SPAN

    root = Path(tempfile.mkdtemp(prefix="v6_bench_shell_day_"))
    pristine = root / "lake"
    setup: list[tuple[str, float]] = []
    server = None
    runs: list[ShellRun] = []
    try:
        lake = Lake(str(pristine))
        uri = lake.uri(POSITION_UPDATES)
        began = time.perf_counter()
        history.generate(
            uri, rows=args.rows, keys=KEYS, appends=args.appends, symbols=SYMBOLS, seed=1
        )
        setup.append((f"history: {args.rows:,} rows, {args.appends} appends", _since(began)))
        books = plan_books(args.positions, seed=3)
        began = time.perf_counter()
        settle_and_trickle(uri, books, churn_end, now - timedelta(minutes=1))
        setup.append(("settle + streamer trickle to now", _since(began)))
        began = time.perf_counter()
        gw = GatewayThread(portfolio(books)).start()
        try:
            snap = take_snapshot(gw.host, gw.port, int(IB_CLIENT_ID.default), timeout_s=60)
        finally:
            gw.stop()
        assert snap.positions.height == args.positions, snap.positions.height
        setup.append((f"one {args.positions:,}-position snapshot (emulator)", _since(began)))
        began = time.perf_counter()
        store_past_snapshots(lake, snap, windows)
        setup.append((f"store {len(windows)} past snapshots", _since(began)))
        began = time.perf_counter()
        lake.read_latest(as_of=datetime.now(UTC))  # builds read_latest's checkpoint
        streamer_append(uri, books, datetime.now(UTC), args.streamer_rows)
        setup.append(("warm-up: first read_latest + a streamer append", _since(began)))

        base = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "V6_"))}
        base["V6_IB_PORT"] = str(free_port())  # nothing listens: a backfill never asks IB
        # The windows start on the first day of the previous UTC month unless set.
        default_start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        if first_day < default_start:  # --days reaching before it
            base["V6_PARTITIONS_START"] = first_day.isoformat()
        if any(n.startswith("pg") for n in names):
            began = time.perf_counter()
            server = start_postgres(durable=not args.pg_no_fsync)
            setup.append((f"PostgreSQL up on 127.0.0.1:{server.port}", _since(began)))
        for name in names:
            print(f"[{name}] v6 reconcile --window {first_key} --to {last_key} ...", flush=True)
            runs.append(shell_run(name, args, root, pristine, base, server, first_key, last_key))
            r = runs[-1]
            print(f"[{name}] {r.wall_s:.1f} s, exit {r.exit_code}", flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\nv6 reconcile --window {first_key} --to {last_key}: {len(windows)} windows "
        f"({args.days} day(s)), {args.rows:,} position_updates rows, {KEYS:,} keys, "
        f"{args.positions:,} IB positions (stored snapshots), planted {PLANTED}; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    )
    for stage, seconds in setup:
        print(f"  setup (not claimed): {stage}: {seconds:.1f} s")
    for name in names:
        print(f"  {name}: {INSTANCE_HELP[name]}")
    if server is not None:
        fsync = "off (--pg-no-fsync)" if args.pg_no_fsync else "on (server defaults)"
        print(f"  PostgreSQL 15 on loopback, fsync {fsync}; batch size {args.batch_size}")
    for r in runs[:1]:
        print(f"\n{r.name}'s report (exit {r.exit_code}):\n" + _head(r.report, 12))
    print_shell_runs(runs, len(windows) / DAY_WINDOWS)


def shell_run(
    name: str,
    args: argparse.Namespace,
    root: Path,
    pristine: Path,
    base: dict[str, str],
    server: Postgres | None,
    first_key: str,
    last_key: str,
) -> ShellRun:
    """One column: a copy of the set-up lake, a fresh instance, `v6 reconcile` timed."""
    out = ShellRun(name)
    lake_dir = root / f"lake-{name}"
    shutil.copytree(pristine, lake_dir)
    home = root / f"home-{name}"
    home.mkdir()
    env = {**base, "DAGSTER_HOME": str(home), "V6_LAKE_DIR": str(lake_dir)}
    if name.startswith("pg"):
        assert server is not None
        shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
        env["DAGSTER_PG_URL"] = server.create_database(name.replace("-", "_"))
    if name.endswith("-batch"):
        env["DAGSTER_EVENT_BATCH_SIZE"] = str(args.batch_size)
    # An operator's instance exists before a backfill: its tables are created first.
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", _OPEN_INSTANCE, str(home)], env=env, check=True, cwd=root)
    out.setup_s = _since(began)
    v6 = Path(sys.executable).with_name("v6")
    command = [str(v6), "reconcile", "--window", first_key, "--to", last_key]
    started = time.time()
    began = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=args.backfill_timeout_s,
            check=False,
        )
        out.exit_code, out.report = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        out.report = f"stopped after {args.backfill_timeout_s:g} s (--backfill-timeout-s)"
    out.wall_s = _since(began)
    ended = time.time()
    with environ(env):
        read_events(out, home, started, ended)
    shutil.rmtree(lake_dir, ignore_errors=True)
    return out


_OPEN_INSTANCE = (
    "import sys\nfrom v6_pipeline.run.instance import open_instance\n"
    "open_instance(sys.argv[1]).dispose()"
)


def read_events(out: ShellRun, home: Path, started: float, ended: float) -> None:
    """The run's events per kind (a plain log line is `(log line)`), and for each event the
    time until the run's next one: what storing it (and whatever ran before the next) took."""
    import dagster as dg
    from dagster import DagsterEventType as Event

    with dg.DagsterInstance.from_config(str(home)) as instance:
        found = instance.get_runs(limit=1)
        if not found:
            return
        entries = sorted(instance.all_logs(found[0].run_id), key=lambda e: e.timestamp)
    if not entries:
        return
    kinds = [e.dagster_event_type.value if e.dagster_event_type else "(log line)" for e in entries]
    for i, kind in enumerate(kinds):
        out.counts[kind] = out.counts.get(kind, 0) + 1
        if i + 1 < len(entries):
            gap = entries[i + 1].timestamp - entries[i].timestamp
            out.gaps.setdefault(kind, []).append(gap)
    began: dict[str, float] = {}
    for e in entries:
        if e.dagster_event_type == Event.STEP_START and e.step_key:
            began[e.step_key] = e.timestamp
        elif e.dagster_event_type in (Event.STEP_SUCCESS, Event.STEP_FAILURE) and e.step_key:
            out.steps[e.step_key] = e.timestamp - began.get(e.step_key, e.timestamp)
    start = next((e.timestamp for e in entries if e.dagster_event_type == Event.RUN_START), None)
    ends = (Event.RUN_SUCCESS, Event.RUN_FAILURE)
    end = next((e.timestamp for e in entries if e.dagster_event_type in ends), None)
    if start is not None and end is not None:
        out.run_s = end - start
    out.before_s = entries[0].timestamp - started
    out.after_s = ended - entries[-1].timestamp


def print_shell_runs(runs: list[ShellRun], days: float) -> None:
    """The columns; targets pro rata to the windows run (`days`: 288 windows a day)."""
    if not runs:
        return
    width = 40
    cell = max(14, *(len(r.name) + 2 for r in runs))
    print(f"\n{'':<{width}}" + "".join(f"{r.name:>{cell}}" for r in runs) + f"{'target':>24}")
    print("-" * (width + cell * len(runs) + 24))

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"{label:<{width}}" + "".join(f"{v:>{cell}}" for v in values) + f"{target:>24}")

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    targets = [DAY_TARGET_S["sqlite" if r.name.startswith("sqlite") else "postgres"] for r in runs]
    met = ["yes" if r.exit_code in (0, 2) and r.wall_s <= t * days else "NO" for r, t in zip(
        runs, targets, strict=True)]  # fmt: skip
    row("v6 reconcile wall s", [f"{r.wall_s:.1f}" for r in runs], "SQLite ≤20, PG ≤10/day")
    row("  per day s", [f"{r.wall_s / days:.1f}" for r in runs])
    row("  met (day target × days)?", met)
    if days > 1:
        week = WEEK_TARGET_S * days / 7
        row("  met (week ≤ 120 s, pro rata)?", ["yes" if r.wall_s <= week else "NO" for r in runs])
    row("  exit code (2: critical, planted)", [str(r.exit_code) for r in runs])
    row("  before the run: imports, defs, instance", [secs(r.before_s) for r in runs])
    row("  the run: RUN_START to its end", [secs(r.run_s) for r in runs])
    for step in STEPS:
        row(f"    {step} step", [secs(r.steps.get(step)) for r in runs])
    row("  after the run: the report", [secs(r.after_s) for r in runs])
    row("instance tables created (not in wall)", [f"{r.setup_s:.1f}" for r in runs])
    total = [sum(r.counts.values()) for r in runs]
    row("events stored", [f"{t:,}" for t in total])
    row("  run s / event, ms", [
        "-" if not t or r.run_s is None else f"{1000 * r.run_s / t:.1f}"
        for r, t in zip(runs, total, strict=True)
    ])  # fmt: skip
    kinds = sorted({k for r in runs for k in r.counts}, key=lambda k: -max(
        sum(r.gaps.get(k, [])) for r in runs))  # fmt: skip
    print("\nevents per kind: count / median ms to the next event / sum s to the next event")
    for kind in kinds:
        cells = []
        for r in runs:
            gaps = sorted(r.gaps.get(kind, []))
            if kind not in r.counts:
                cells.append("-")
            elif not gaps:
                cells.append(f"{r.counts[kind]}")
            else:
                median = 1000 * gaps[len(gaps) // 2]
                cells.append(f"{r.counts[kind]}/{median:.0f}/{sum(gaps):.1f}")
        row(kind, cells)


def _since(began: float) -> float:
    return time.perf_counter() - began


def _head(text: str, lines: int) -> str:
    kept = text.strip().splitlines()
    more = len(kept) - lines
    return "\n".join(
        ["  " + line for line in kept[:lines]] + ([f"  … {more} more"] if more > 0 else [])
    )


if __name__ == "__main__":
    main()
