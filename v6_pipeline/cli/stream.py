"""`v6 stream`: IB position events into `position_updates` until SIGINT/SIGTERM.

`--once` writes one full snapshot (the rows that bring the log to IB) and exits, for
cron users and repairs. Exit 0 on a clean stop with every row written, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from v6_pipeline.stream.streamer import Streamer, StreamSummary

HELP = "write position_updates from IB's position events, with a heartbeat in stream_status"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="write one full snapshot (the rows that bring position_updates to IB) and exit",
    )


def run(args: argparse.Namespace) -> int:
    from v6_pipeline.ib.errors import IBSnapshotError
    from v6_pipeline.lake import Lake
    from v6_pipeline.lake.errors import LakeError
    from v6_pipeline.stream.settings import stream_settings
    from v6_pipeline.stream.streamer import DuplicateStreamError, Streamer
    from v6_pipeline.stream.writer import BacklogFullError

    try:
        settings = stream_settings()
        # The stream extends a book; it does not start one in a mistyped directory.
        Lake(settings.lake_dir).require_position_updates()
    except (ValueError, LakeError) as exc:
        print(f"v6 stream: {exc}", file=sys.stderr)
        return 1
    streamer = Streamer(settings)
    logging.getLogger(__name__).info(
        "streaming IB at %s:%d (client id %d) into %s as %s; flush every %g s, heartbeat "
        "every %g s",
        settings.host,
        settings.port,
        settings.client_id,
        settings.lake_dir,
        streamer.stream_id,
        settings.flush_s,
        settings.heartbeat_s,
    )
    try:
        summary = asyncio.run(streamer.once() if args.once else _until_signalled(streamer))
    except (BacklogFullError, DuplicateStreamError, IBSnapshotError, LakeError) as exc:
        print(f"v6 stream: {exc}", file=sys.stderr)
        return 1
    print(f"v6 stream: {summary.describe()}", flush=True)
    return 1 if summary.unwritten else 0


async def _until_signalled(streamer: Streamer) -> StreamSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await streamer.run(stop)
