"""`v6 demo --ui`: `dg dev` on the demo's data, and the end of the demo's story.

The UI first shows the failing window the demo just judged. `fix_after` seconds later
the demo starts `v6 stream` on the same gateway and lake: its first snapshot brings
`position_updates` to what IB holds, closing the naked leg, so the next scheduled window
is clean, and the plots show both states over several windows within about ten minutes.
The streamer then keeps following the gateway (and heartbeating) until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from v6_pipeline.demo.book import NAKED_LEG
from v6_pipeline.demo.narrator import Narrator
from v6_pipeline.settings import STREAM_CLIENT_ID  # `v6 stream`'s, apart from the pipeline's


def dg_command() -> str:
    """Dagster's `dg` CLI (dagster-dg-cli, pinned with the family) beside this Python."""
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.exists() else (shutil.which("dg") or "dg")


def serve_ui(
    settings: dict[str, str], port: int, *, home: Path, first: str, fix_after: float
) -> int:
    """`dg dev` with `settings` until Ctrl-C; the emulator stays up meanwhile."""
    command = [
        dg_command(), "dev",
        "-m", "v6_pipeline.definitions", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    print(f"\nStarting the Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops everything)")
    print(f"Its windows start at {first} UTC, the one just judged; the schedule judges a new")
    print("one every 5 minutes, and the alert sensors run (Automation).")
    print(f"In {fix_after:g} s the demo starts `v6 stream`: its first snapshot writes what IB")
    print(f"holds to position_updates, closing {NAKED_LEG}; from the next window on,")
    print("no_naked_positions passes: the run, the lineage node and the Checks tab are green,")
    print(f"and window {first} keeps its NAKED verdict on its own partition page.")
    # Its own process group, so Ctrl-C and the shutdown reach the daemon and webserver.
    # Run from the instance's folder: `dg dev` warns about any other dagster.yaml in
    # its working folder (the repository's own, for one).
    env = {**os.environ, **settings}
    # Dagster's own output (the webserver, the daemon, every run's events at DEBUG) to a
    # file: the terminal gets what a person follows (the narrator's lines).
    dagster_log = home.parent / "dagster.log"
    print(f"Dagster's own output (webserver, daemon, each run's events): {dagster_log}")
    print("Here: each window's verdict as it is judged, each alert, the streamer's repairs.\n")
    narrator = Narrator(
        home,
        Path(settings["V6_LAKE_DIR"]),
        ui_url=f"http://127.0.0.1:{port}",
        stream_log=home.parent / "stream.log",
    )
    narrator.skip_existing()
    with dagster_log.open("ab") as sink:
        proc = subprocess.Popen(
            command, env=env, cwd=home, start_new_session=True, stdout=sink, stderr=sink
        )
    narrator.start()
    streamer = _Streamer(env, log_path=home.parent / "stream.log")
    timer = threading.Timer(fix_after, streamer.start)
    timer.daemon = True
    # Ctrl-C and a plain `kill` both stop everything; a shell script that starts us in the
    # background leaves SIGINT ignored, so restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        timer.start()
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        timer.cancel()
        streamer.stop()
        stop_group(proc)
        narrator.stop()


class _Streamer:
    """`v6 stream` as a child process, its log in a file beside the demo's lake."""

    def __init__(self, env: dict[str, str], *, log_path: Path) -> None:
        self._env = {STREAM_CLIENT_ID.variable: STREAM_CLIENT_ID.default, **env}
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._log = self._log_path.open("ab")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "v6_pipeline.cli", "stream"],
                env=self._env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        print(
            f"\nv6 demo: {datetime.now(UTC):%H:%M:%S} UTC: started `v6 stream` (log: "
            f"{self._log_path}); its first snapshot closes {NAKED_LEG} in position_updates.",
            flush=True,
        )

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._proc is not None:
                stop_group(self._proc)  # SIGTERM: it flushes its pending rows first
            if self._log is not None:
                self._log.close()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop `proc`'s process group (dg dev, its daemon, webserver and run workers)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
