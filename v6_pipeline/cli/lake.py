"""`v6 lake`: create the empty position log, and maintain the tables."""

from __future__ import annotations

import argparse

from v6_pipeline.lake import Lake, LakeError, paths
from v6_pipeline.lake.maintenance import DEFAULT_RETENTION_HOURS

HELP = "create and maintain the Delta tables"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lake_command", required=True, metavar="ACTION")
    init = sub.add_parser(
        "init",
        help="create an empty position_updates table (for a book that starts empty)",
    )
    maintain = sub.add_parser("maintain", help="compact small files, then vacuum old ones")
    maintain.add_argument(
        "--retention-hours",
        type=int,
        default=DEFAULT_RETENTION_HOURS,
        help="keep unreferenced files this long (default %(default)s); a run reading for "
        "longer than this may fail",
    )
    for child in (init, maintain):
        child.add_argument(
            "--lake-dir",
            default=None,
            help=f"root of the Delta tables (default: $V6_LAKE_DIR, else {paths.DEFAULT_LAKE_DIR})",
        )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except LakeError as error:  # a sentence that says what to fix
        print(f"v6 lake: {error}")
        return 1


def _run(args: argparse.Namespace) -> int:
    lake = Lake(args.lake_dir or paths.default_lake_dir())
    if args.lake_command == "init":
        created = lake.create_position_updates()
        where = lake.uri(paths.POSITION_UPDATES)
        print(f"{'created empty' if created else 'already exists:'} {where}")
        return 0
    for m in lake.maintain(retention_hours=args.retention_hours):
        print(
            f"{m.table_uri}: compaction removed {m.files_removed} file(s), added "
            f"{m.files_added}; vacuum deleted {m.files_vacuumed}"
        )
    return 0
