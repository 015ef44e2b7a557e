"""`v6 demo --ui`: `dagster dev` on the demo's data, and the end of the demo's story.

The UI first shows the failing window the demo just judged. Then the demo plays the
streamer's part: `fix_after` seconds later it writes the update closing the naked leg
(as `v6 stream` would once the leg is closed in TWS), so the next scheduled window is
clean, and the plots show both states over several windows within about ten minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from v6_pipeline.demo.book import NAKED_LEG, closing_update
from v6_pipeline.lake.errors import LakeError
from v6_pipeline.lake.lake import Lake

# `dagster dev` warns that `dg dev` supersedes it. `dg` needs the dagster-dg-cli
# package, which the project does not install for this one command, and `dagster dev`
# does all the demo needs; the notice would read to a newcomer like a fault.
_QUIET = "ignore:Function `dev_command` is superseded"


def serve_ui(
    settings: dict[str, str], port: int, *, home: Path, first: str, fix_after: float
) -> int:
    """`dagster dev` with `settings` until Ctrl-C; the emulator stays up meanwhile."""
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-m", "v6_pipeline.definitions", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    warnings = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), _QUIET]))
    print(f"\nStarting the Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops everything)")
    print(f"Its windows start at {first} UTC, the one just judged; the schedule judges a new")
    print("one every 5 minutes, and the alert sensors run (Automation).")
    print(f"In {fix_after:g} s the demo writes the update closing {NAKED_LEG}, as `v6 stream`")
    print("would once the leg is closed in TWS: from the next window on, no_naked_positions")
    print("passes and the run is green.")
    # Its own process group, so Ctrl-C and the shutdown reach the daemon and webserver.
    # Run from the instance's folder: `dagster dev` warns about any other dagster.yaml in
    # its working folder (the repository's own, for one).
    proc = subprocess.Popen(
        command,
        env={**os.environ, **settings, "PYTHONWARNINGS": warnings},
        cwd=home,
        start_new_session=True,
    )
    fix = threading.Timer(fix_after, _close_naked_leg, args=(Path(settings["V6_LAKE_DIR"]),))
    fix.daemon = True
    # Ctrl-C and a plain `kill` both stop everything; a shell script that starts us in the
    # background leaves SIGINT ignored, so restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        fix.start()
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        fix.cancel()
        stop_group(proc)


def _close_naked_leg(lake_dir: Path) -> None:
    now = datetime.now(UTC)
    try:
        Lake(lake_dir).append_position_updates(closing_update(now))
    except LakeError as exc:
        print(f"\nv6 demo: could not write the closing update for {NAKED_LEG}: {exc}", flush=True)
        return
    print(
        f"\nv6 demo: {now:%H:%M:%S} UTC: wrote the update closing {NAKED_LEG} to "
        "position_updates; the next window judged is clean.",
        flush=True,
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop `proc`'s process group (dagster dev, its daemon, webserver and run workers)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
