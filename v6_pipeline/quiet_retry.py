"""A live snapshot inside IB's reset hours: retried until the window's deadline.

IB Gateway restarts every night (and re-logs in weekly), dropping every API connection
for minutes, within hours that move from year to year: `V6_IB_QUIET_WINDOWS`. A snapshot
that fails transiently inside such a window is taken again, every few seconds, until
the window's deadline (shortly before the next window's scheduled run) rather than
failing the run at its first timeout. Outside them, the first failure stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.ib.errors import IBSnapshotError
from v6_pipeline.ib.snapshot import IBSnapshot
from v6_pipeline.windowing import WINDOW

PAUSE_S = 5.0
# The next window's scheduled run starts at this window's end plus WINDOW: stop before.
_MARGIN = timedelta(seconds=30)


def live_deadline(window: datetime) -> datetime:
    """The last moment a live snapshot of `window` is retried inside a quiet window."""
    return window + 2 * WINDOW - _MARGIN


def snapshot_through_resets(
    take: Callable[[], IBSnapshot],
    *,
    quiet: QuietWindows,
    deadline: datetime,
    log: logging.Logger | logging.LoggerAdapter,
    pause_s: float = PAUSE_S,
) -> IBSnapshot:
    """`take()`, retried after a transient failure while inside a quiet window and
    before `deadline`. The last error otherwise; one given up on at the deadline carries
    a note (`__notes__`) saying how long it was tried."""
    started = datetime.now(UTC)
    attempts = 0
    while True:
        attempts += 1
        try:
            return take()
        except IBSnapshotError as exc:
            now = datetime.now(UTC)
            if not exc.transient or not quiet.is_quiet(now):
                raise
            if now + timedelta(seconds=pause_s) >= deadline:
                exc.add_note(
                    f"Tried {attempts} time(s) inside V6_IB_QUIET_WINDOWS (IB's reset hours) "
                    f"from {started:%H:%M:%S} UTC until the window's deadline "
                    f"{deadline:%H:%M:%S} UTC: the gateway did not come back in time."
                )
                raise
            log.warning(
                f"IB snapshot failed inside V6_IB_QUIET_WINDOWS ({exc}); IB's reset hours: "
                f"trying again in {pause_s:g} s, until {deadline:%H:%M:%S} UTC"
            )
            time.sleep(pause_s)


def described(exc: BaseException) -> str:
    """`exc`'s sentence with its notes."""
    return " ".join([str(exc), *getattr(exc, "__notes__", ())])
