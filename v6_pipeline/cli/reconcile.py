"""`v6 reconcile`: one window (or a range) from a shell, through the Dagster job.

The report is on stdout. Dagster's event log of the run (every step's events, and the
stack trace of the expected failure of a naked window's blocking check) goes to a log
file the report names; with `-v` to stderr, at DEBUG. The instance keeps it too (the
run's page in the UI) when `DAGSTER_HOME` is set.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,  # `v6 -v reconcile` says the same
        help="show Dagster's event log of the run on stderr (otherwise it goes to a file)",
    )


def log_path(now: datetime) -> Path:
    """Where a quiet run's event log goes: `$DAGSTER_HOME/logs/`, else the temp folder."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    folder = Path(home).expanduser() / "logs" if home else Path(tempfile.gettempdir())
    return folder / f"v6-reconcile-{now:%Y%m%dT%H%M%SZ}-{os.getpid()}.log"


@contextlib.contextmanager
def _to_file(path: Path) -> Iterator[None]:
    """Dagster's console log and the Python log, to `path`, for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    saved = root.handlers[:]
    with path.open("a", encoding="utf-8") as stream, contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers = [handler]
        try:
            yield
        finally:
            root.handlers = saved


def run(args: argparse.Namespace) -> int:
    from v6_pipeline.defs.partitions import last_closed_window, window_key
    from v6_pipeline.run.report import print_outcome
    from v6_pipeline.run.runner import EXIT_FAILED, run_windows

    # A plain `kill` stops a run the way Ctrl-C does: Dagster then records its end.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    verbose = bool(getattr(args, "verbose", False))
    now = datetime.now(UTC)
    # The report is what a person reads; Dagster's event log goes to a file it names
    # (and stays in the instance), on stderr only with -v.
    log_file = None if verbose else log_path(now)
    try:
        from v6_pipeline.definitions import defs
        from v6_pipeline.run.instance import instance_from_env

        loaded = defs()
        first = args.window or window_key(last_closed_window(now))
        instance, where = instance_from_env()
        quiet = contextlib.nullcontext() if log_file is None else _to_file(log_file)
        with quiet:
            level = "DEBUG" if verbose or log_file is not None else "INFO"
            outcome = run_windows(loaded, first, args.to, instance=instance, log_level=level)
    except (ValueError, RuntimeError) as exc:
        print(f"v6 reconcile: {exc}")
        if log_file is not None and log_file.exists():
            print(f"Dagster's event log: {log_file}")
        return EXIT_FAILED
    print_outcome(outcome)
    print(where)
    if log_file is not None:
        print(f"Dagster's event log: {log_file} (on stderr with `v6 reconcile -v`)")
    return outcome.exit_code
