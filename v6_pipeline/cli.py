"""The `v6` command: a thin dispatcher over the subcommands' own modules.

Each subcommand module exposes `HELP`, `configure(parser)` and `run(args) -> int`;
heavy imports (Dagster) stay inside `run`, so `v6 gateway` starts fast.

A bad setting is one sentence and exit 1 from every subcommand, never a traceback: the
subcommands print the `ValueError`s of their own checks, and `main` prints any
`SettingError` that gets past them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from v6_pipeline.settings import LAKE_DIR, Setting, SettingError

# name -> module implementing it
COMMANDS: dict[str, str] = {
    "demo": "v6_pipeline.demo.command",
    "reconcile": "v6_pipeline.run.command",
    "gateway": "v6_pipeline.ib.gateway.command",
    "lake": "v6_pipeline.lake.command",
    "stream": "v6_pipeline.stream.command",
    "doctor": "v6_pipeline.doctor.command",
    "alerts": "v6_pipeline.alerts.command",
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


if __name__ == "__main__":
    sys.exit(main())
