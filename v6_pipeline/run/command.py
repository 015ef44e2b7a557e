"""`v6 reconcile`: one window (or a range) from a shell, through the Dagster job."""

from __future__ import annotations

import argparse
import signal
from datetime import UTC, datetime

HELP = "reconcile one 5-minute window now (exit 0 ok, 2 critical, 1 failed)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window",
        metavar="KEY",
        help="window key YYYY-MM-DD-HH:MM (UTC); default: the newest closed window",
    )
    parser.add_argument(
        "--to",
        metavar="KEY",
        help="last window of a range to re-judge in one run (a backfill of stored snapshots)",
    )


def run(args: argparse.Namespace) -> int:
    from v6_pipeline.defs.partitions import last_closed_window, window_key
    from v6_pipeline.run.report import print_outcome
    from v6_pipeline.run.runner import EXIT_FAILED, run_windows

    # A plain `kill` stops a run the way Ctrl-C does: Dagster then records its end.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from v6_pipeline.definitions import defs
        from v6_pipeline.run.instance import instance_from_env

        loaded = defs()
        first = args.window or window_key(last_closed_window(datetime.now(UTC)))
        instance, where = instance_from_env()
        outcome = run_windows(loaded, first, args.to, instance=instance)
    except (ValueError, RuntimeError) as exc:
        print(f"v6 reconcile: {exc}")
        return EXIT_FAILED
    print_outcome(outcome)
    print(where)
    return outcome.exit_code
