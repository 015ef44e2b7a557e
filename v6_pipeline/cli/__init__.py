"""The `v6` command: a thin dispatcher over the subcommands' own modules.

Each subcommand is a module of this folder named for its verb (`cli/reconcile.py` is
`v6 reconcile`), exposing `HELP`, `configure(parser)` and `run(args) -> int`; heavy
imports (Dagster) stay inside `run`, so `v6 gateway` starts fast. The CLI is the top
layer: nothing else in the package imports it.

A bad setting is one sentence and exit 1 from every subcommand, never a traceback: the
subcommands print the `ValueError`s of their own checks, and `main` prints any
`SettingError` that gets past them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os

from v6_pipeline.settings import LAKE_DIR, Setting, SettingError

# name -> module implementing it
COMMANDS: dict[str, str] = {
    "demo": "v6_pipeline.cli.demo",
    "reconcile": "v6_pipeline.cli.reconcile",
    "gateway": "v6_pipeline.cli.gateway",
    "lake": "v6_pipeline.cli.lake",
    "stream": "v6_pipeline.cli.stream",
    "doctor": "v6_pipeline.cli.doctor",
    "alerts": "v6_pipeline.cli.alerts",
}

# Options a subcommand takes from a setting when not given (command -> option ->
# setting), filled in here with the setting's parsed value: such a command reads the
# environment with no check of its own.
FROM_SETTINGS: dict[str, dict[str, Setting[str]]] = {"lake": {"lake_dir": LAKE_DIR}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="v6",
        description="Reconcile Interactive Brokers positions with the Delta Lake position log.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        child = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(child)
        child.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The project's own progress at INFO; libraries (ib_async logs every position it
    # receives, alembic every migration) only when they warn, unless --verbose.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("v6_pipeline").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        for option, setting in FROM_SETTINGS.get(args.command, {}).items():
            if getattr(args, option, None) is None:
                setattr(args, option, setting.read(os.environ))
        return int(args._run(args) or 0)
    except SettingError as exc:
        print(f"v6 {args.command}: {exc}")
        return 1
