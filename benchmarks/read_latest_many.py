"""A one-day backfill: the latest positions at 288 window times in one call, against one
`read_latest` per window.

`position_updates` is written as in `read_latest.py` (a year of history, 50k keys, ~1%
of rows late, then a streamer's small append), and a live read builds the checkpoint near
the newest row, so a backfill of a day a month back is older than the checkpoint's cutoff
(as in production). The 288 `as_of`s are each window's end plus a few seconds (a
snapshot's `taken_at`). Each approach runs in a fresh subprocess (peak memory its own):

- read_latest_many: all 288 answers in one list
- iter_latest:      the same, consumed one answer at a time
- read_latest:      one call per window, on every 24th window (12 of 288), extrapolated
                    to 288 (every call costs about the same: it reads the history before
                    its `as_of`, nearly all of it)

Answers are compared on the windows both read (row count and position sum per window).

    .venv/bin/python benchmarks/read_latest_many.py                # 10M rows
    .venv/bin/python benchmarks/read_latest_many.py --rows 200000  # a quick run
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from deltalake import DeltaTable
from read_latest import SPAN, START, generate, small_append

from v6_pipeline.lake import iter_latest, read_latest, read_latest_many

WINDOWS = 288  # 5-minute windows in a day
SAMPLE_EVERY = 24  # read_latest is timed on every 24th window (12 of 288)
METHODS = ("read_latest_many", "iter_latest", "read_latest")


def window_times(day: datetime) -> list[datetime]:
    """Each window's end plus a few seconds: when its snapshot was taken."""
    return [day + timedelta(minutes=5 * (k + 1), seconds=3 + k % 7) for k in range(WINDOWS)]


def measure(method: str, uri: str, as_ofs: list[datetime]) -> dict[str, object]:
    """Seconds, peak MB and (row count, position sum) per window read."""
    began = time.perf_counter()
    if method == "read_latest_many":
        answers = zip(as_ofs, read_latest_many(uri, as_ofs=as_ofs), strict=True)
    elif method == "iter_latest":
        answers = iter_latest(uri, as_ofs=as_ofs)
    else:
        as_ofs = as_ofs[::SAMPLE_EVERY]
        answers = ((a, read_latest(uri, as_of=a)) for a in as_ofs)
    # Each answer is dropped once digested, as a loop over windows would do.
    digest = {a.isoformat(): [f.height, round(float(f["position"].sum()), 6)] for a, f in answers}
    return {
        "seconds": time.perf_counter() - began,
        "windows": len(as_ofs),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "digest": digest,
    }


def run_measure(method: str, uri: str, day: datetime) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", method, "--uri", uri, "--day", day.isoformat()],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--days-back", type=int, default=30, help="the backfilled day's age")
    parser.add_argument("--repeat", type=int, default=2, help="runs per approach; best kept")
    parser.add_argument("--dir", type=Path, default=None, help="reuse or keep the table here")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        times = window_times(datetime.fromisoformat(args.day))
        print(json.dumps(measure(args.measure, args.uri, times)))
        return

    root = args.dir or Path(tempfile.mkdtemp(prefix="v6_bench_"))
    uri = str(root / f"rows_{args.rows}" / "position_updates")
    try:
        if not Path(uri).exists():
            began = time.perf_counter()
            generate(
                uri,
                rows=args.rows,
                keys=args.keys,
                appends=args.appends,
                symbols=args.symbols,
                seed=1,
            )
            small_append(uri, keys=args.keys, symbols=args.symbols, rows=2_000, seed=2)
            print(f"written in {time.perf_counter() - began:.1f} s")
        shutil.rmtree(Path(uri).parent / "_v6_checkpoints", ignore_errors=True)
        read_latest(uri, as_of=START + SPAN)  # the live runs' checkpoint
        day = START + SPAN - timedelta(days=args.days_back)
        print(
            f"== {args.rows:,} rows, {args.keys:,} keys, {len(DeltaTable(uri).file_uris())} "
            f"files; backfill of {WINDOWS} windows on {day:%Y-%m-%d} (best of {args.repeat})"
        )
        results = {
            m: min(
                (run_measure(m, uri, day) for _ in range(args.repeat)),
                key=lambda r: r["seconds"],
            )
            for m in METHODS
        }
    finally:
        if args.dir is None:
            shutil.rmtree(root)

    single = results["read_latest"]
    for name in ("read_latest_many", "iter_latest"):
        digest = results[name]["digest"]
        assert all(digest[a] == d for a, d in single["digest"].items()), f"{name} disagrees"
    per_call = single["seconds"] / single["windows"]
    many = results["read_latest_many"]["seconds"]
    rows = [
        (f"read_latest_many, {WINDOWS} windows", results["read_latest_many"]),
        (f"iter_latest, {WINDOWS} windows", results["iter_latest"]),
        (f"read_latest, {single['windows']} windows (measured)", single),
    ]
    print(f"{'approach':<36}{'seconds':>10}{'peak MB':>10}")
    for name, r in rows:
        print(f"{name:<36}{r['seconds']:>10.2f}{r['peak_mb']:>10.0f}")
    print(f"{f'read_latest x {WINDOWS} (extrapolated)':<36}{per_call * WINDOWS:>10.1f}")
    print(
        f"\nread_latest x {WINDOWS} (extrapolated) / read_latest_many: "
        f"{per_call * WINDOWS / many:.0f}x; target for {WINDOWS} windows: < 300 s"
    )


if __name__ == "__main__":
    main()
