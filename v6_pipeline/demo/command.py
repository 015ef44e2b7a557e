"""`v6 demo`: the main job on embedded defaults, printed for a person.

Starts the IB Gateway emulator on a free port with the demo portfolio, writes a demo
`position_updates` log that disagrees with it in every way the contract knows, and
materializes the newest closed window through a real Dagster instance. `--ui` then
keeps the emulator up and starts `dagster dev` on the same lake and instance.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HELP = "run the pipeline once on embedded defaults (emulator + local Delta) and explain it"
MARKER = ".v6-demo"  # only a folder the demo made is ever wiped
EXPECTED = {"NAKED_POSITION", "MISSING_FROM_DELTA", "POSITION_MISMATCH", "STALE_DATA"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default="data/demo",
        help="where the demo's lake and Dagster home go; recreated each run (default %(default)s)",
    )
    parser.add_argument(
        "--ui", action="store_true", help="then start the Dagster UI on the same data"
    )
    parser.add_argument("--ui-port", type=int, default=3000, help="UI port (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from v6_pipeline.demo.book import (
        DEMO_STALE_AFTER_S,
        STORY,
        demo_position_updates,
        portfolio_path,
    )
    from v6_pipeline.ib.gateway import GatewayThread, load_portfolio
    from v6_pipeline.lake.lake import Lake

    logging.getLogger("v6_pipeline").setLevel(logging.WARNING)  # the printout tells the story
    base = _fresh_dir(Path(args.dir))
    if base is None:
        return 1
    lake_dir, home = base / "lake", base / "dagster_home"
    started = time.monotonic()
    with GatewayThread(load_portfolio(portfolio_path())) as gateway:
        print(f"IB Gateway emulator listening on {gateway.host}:{gateway.port} (demo portfolio)")
        Lake(lake_dir).append_position_updates(demo_position_updates(datetime.now(UTC)))
        print(f"Demo position log written to {lake_dir}/position_updates\n")
        print("The demo books plant:")
        for leg, story in STORY:
            print(f"  {leg:<28} {story}")
        print()
        outcome = _run_once(gateway.host, gateway.port, lake_dir, home)
        print(f"\n(finished in {time.monotonic() - started:.1f} s)")
        planted = set(outcome.discrepancies["type"])
        as_designed = outcome.naked_check_passed is False and planted == EXPECTED
        if not as_designed:
            print("The demo did NOT turn out as designed: see above.")
            return 1
        if not args.ui:
            print("\nNext, watch it run every 5 minutes in the Dagster UI on the same data:")
            print(f"  v6 demo --ui --dir {args.dir}")
            return 0
        return _serve_ui(
            {
                "V6_IB_HOST": gateway.host,
                "V6_IB_PORT": str(gateway.port),
                "V6_LAKE_DIR": str(lake_dir),
                "V6_STALE_AFTER_S": str(DEMO_STALE_AFTER_S),
                "DAGSTER_HOME": str(home),
            },
            args.ui_port,
        )


def _run_once(host: str, port: int, lake_dir: Path, home: Path):  # -> Outcome
    from v6_pipeline.definitions import build_defs
    from v6_pipeline.defs.partitions import last_closed_window, window_key
    from v6_pipeline.defs.resources import (
        AlertsResource,
        IBGatewayResource,
        LakeResource,
        ReconciliationSettings,
    )
    from v6_pipeline.demo.book import DEMO_STALE_AFTER_S
    from v6_pipeline.run.instance import open_instance
    from v6_pipeline.run.report import print_outcome
    from v6_pipeline.run.runner import run_windows

    defs = build_defs(
        {
            "ib": IBGatewayResource(host=host, port=port),
            "lake": LakeResource(lake_dir=str(lake_dir)),
            "settings": ReconciliationSettings(stale_after_s=str(DEMO_STALE_AFTER_S)),
            "alerts": AlertsResource.from_env(),
        }
    )
    key = window_key(last_closed_window(datetime.now(UTC)))
    print(f"Materializing window {key} (UTC) through Dagster ...\n")
    with open_instance(home) as instance:
        outcome = run_windows(defs, key, instance=instance, log_level="CRITICAL")
    print_outcome(outcome)
    return outcome


def _fresh_dir(base: Path) -> Path | None:
    base = base.expanduser().resolve()
    if base.exists() and not base.is_dir():
        print(f"v6 demo: {base} is a file; give --dir a folder (it is created if missing)")
        return None
    if base.exists() and any(base.iterdir()):
        if not (base / MARKER).exists():
            print(f"v6 demo: {base} exists and was not made by the demo; choose another --dir")
            return None
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / MARKER).write_text("made by `v6 demo`; recreated on every run\n")
    return base


def _serve_ui(env: dict[str, str], port: int) -> int:
    """`dagster dev` on the demo's data until Ctrl-C; the emulator stays up meanwhile."""
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-m", "v6_pipeline.definitions", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    print(f"\nStarting the Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops everything)")
    print("The schedule reconciles every 5 minutes; open the failed no_naked_positions check,")
    print("or launch a backfill from the position_discrepancies asset page.")
    # Its own process group, so Ctrl-C and the shutdown reach the daemon and webserver.
    proc = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True)
    # Ctrl-C and a plain `kill` both stop everything; a shell script that starts us in the
    # background leaves SIGINT ignored, so restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
