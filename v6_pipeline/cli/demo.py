"""`v6 demo`: the main job on embedded defaults, printed for a person.

Starts the IB Gateway emulator on a free port with the demo portfolio, writes a demo
`position_updates` log that disagrees with it in every way the contract knows, and
materializes the newest closed window through a real Dagster instance. `--ui` then
keeps the emulator up and starts `dg dev` on the same lake and instance.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from v6_pipeline.reconcile import DiscrepancyType
from v6_pipeline.settings import ALERT_URLS

HELP = "run the pipeline once on embedded defaults (emulator + local Delta) and explain it"
MARKER = ".v6-demo"  # only a folder the demo made is ever wiped
EXPECTED = {t.value for t in DiscrepancyType}  # the demo book plants one of each


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
    parser.add_argument(
        "--fix-after",
        type=float,
        default=120,
        metavar="SECONDS",
        help="with --ui: when the demo starts `v6 stream`, whose first snapshot closes the "
        "naked leg in position_updates, so that the next window is clean (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from v6_pipeline.defs.partitions import last_closed_window, window_key
    from v6_pipeline.demo.book import (
        DEMO_STALE_AFTER_S,
        STORY,
        demo_position_updates,
        portfolio_path,
    )
    from v6_pipeline.ib.gateway import GatewayThread, load_portfolio
    from v6_pipeline.lake.lake import Lake
    from v6_pipeline.run.instance import open_instance

    logging.getLogger("v6_pipeline").setLevel(logging.WARNING)  # the printout tells the story
    base = _fresh_dir(Path(args.dir))
    if base is None:
        return 1
    lake_dir, home = base / "lake", base / "dagster_home"
    # The alerts' links lead to the demo's own UI (the `dg dev` child inherits it).
    os.environ.setdefault("V6_UI_URL", f"http://127.0.0.1:{args.ui_port}")
    started = time.monotonic()
    with GatewayThread(load_portfolio(portfolio_path())) as gateway:
        print(f"IB Gateway emulator listening on {gateway.host}:{gateway.port} (demo portfolio)")
        now = datetime.now(UTC)
        Lake(lake_dir).append_position_updates(demo_position_updates(now))
        print(f"Demo position log written to {lake_dir}/position_updates\n")
        print("The demo books plant:")
        for leg, story in STORY:
            print(f"  {leg:<28} {story}")
        print()
        window = last_closed_window(now)
        # The demo's tick sends the alert itself: the alert state is shared with the
        # daemon's sensor (--ui), which then finds it raised and sends nothing again.
        try:
            defs = _demo_defs(gateway.host, gateway.port, lake_dir, start=window)
        except ValueError as exc:  # a bad V6_* setting, named
            print(f"v6 demo: {exc}")
            return 1
        with open_instance(home) as instance:
            outcome = _run_once(defs, instance, window_key(window))
            print(f"\n(finished in {time.monotonic() - started:.1f} s)")
            planted = set(outcome.discrepancies["type"])
            if outcome.naked_check_passed is not False or planted != EXPECTED:
                print("The demo did NOT turn out as designed: see above.")
                return 1
            _show_alert(defs, instance, lake_dir, ui=args.ui)
        if not args.ui:
            print("\nNext, watch it run every 5 minutes in the Dagster UI on the same data:")
            print(f"  v6 demo --ui --dir {args.dir}")
            return 0
        from v6_pipeline.demo.ui import serve_ui
        from v6_pipeline.run.runner import PLANNED_SUBSET

        settings = {
            "V6_IB_HOST": gateway.host,
            "V6_IB_PORT": str(gateway.port),
            "V6_LAKE_DIR": str(lake_dir),
            "V6_STALE_AFTER_S": str(DEMO_STALE_AFTER_S),
            "DAGSTER_HOME": str(home),
            # A range backfill plans each asset once; a gap reads missing, not failed.
            PLANNED_SUBSET: "1",
        }
        return serve_ui(
            settings, args.ui_port, home=home, first=window_key(window), fix_after=args.fix_after
        )


def _demo_defs(host: str, port: int, lake_dir: Path, *, start: datetime):
    """The project's definitions on the emulator and the demo lake (-> dg.Definitions)."""
    from v6_pipeline.definitions import build_defs
    from v6_pipeline.defs.resources import (
        AlertsResource,
        IBGatewayResource,
        LakeResource,
        ReconciliationSettings,
    )
    from v6_pipeline.demo.book import DEMO_STALE_AFTER_S

    return build_defs(
        {
            "ib": IBGatewayResource(host=host, port=port),
            "lake": LakeResource(lake_dir=str(lake_dir)),
            # The demo's staleness; the other settings (settle, confirm, ...) as set.
            "settings": ReconciliationSettings.from_env(stale_after_s=str(DEMO_STALE_AFTER_S)),
            "alerts": AlertsResource.from_env(),
        },
        start=start,
    )


def _run_once(defs, instance, key: str):  # -> Outcome
    from v6_pipeline.run.report import print_outcome
    from v6_pipeline.run.runner import run_windows

    print(f"Materializing window {key} (UTC) through Dagster ...\n")
    outcome = run_windows(defs, key, instance=instance, log_level="CRITICAL")
    print_outcome(outcome)
    return outcome


def _show_alert(defs, instance, lake_dir: Path, *, ui: bool) -> None:
    from v6_pipeline.demo.alert import print_alerts, raise_alerts

    print("\nThe alert discrepancy_alert_sensor raises for it:")
    print_alerts(raise_alerts(defs, instance, lake_dir))
    urls = ALERT_URLS.variable
    if ALERT_URLS.read(os.environ) is None:
        print(f"{urls} is unset: alerts go to the log and the alert_log table only.")
    elif ui:
        print(f"Sent to {urls}; the daemon's sensor shares its state: no second page.")


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
