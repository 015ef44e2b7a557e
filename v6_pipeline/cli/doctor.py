"""`v6 doctor`: check, in order and each within seconds, everything a run needs."""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from v6_pipeline.doctor.report import Report

HELP = (
    "check settings, gateway, lake, Dagster instance and stream; one line per item "
    "with the fix (exit 0 when all pass)"
)
DEFAULT_TIMEOUT_S = 10.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="the longest one item may take (default %(default)g; the snapshot gets at most "
        "V6_IB_TIMEOUT_S)",
    )


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print("v6 doctor: --timeout must be > 0")
        return 1
    # The lines say what happened; the libraries' and the snapshot's own logs would
    # repeat it on stderr (shown with -v).
    quiet = () if getattr(args, "verbose", False) else ("v6_pipeline", "ib_async", "dagster")
    levels = {name: logging.getLogger(name).level for name in quiet}
    try:
        for name in quiet:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        report = diagnose(timeout_s=args.timeout)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    failed = sum(line.mark == "✗" for line in report.lines)
    print("all checks passed" if report.passed else f"{failed} item(s) failed")
    return 0 if report.passed else 1


def diagnose(*, timeout_s: float) -> Report:
    from v6_pipeline import settings as s
    from v6_pipeline.doctor import gateway, instance, lake, stream
    from v6_pipeline.doctor.report import Report, fail, skip
    from v6_pipeline.doctor.settings import alert_sinks_line, read_settings, settings_lines

    report = Report()
    read = read_settings(os.environ)
    for line in settings_lines(read):
        report.add(line)

    # The lake is read first (silently): the managed-accounts line compares with it.
    lake_dir = read.get(s.LAKE_DIR)
    findings = None
    access: list = []
    if lake_dir is not None:
        access = lake.access_lines(lake_dir, timeout_s=timeout_s)
        if access[0].mark == "✓":
            findings = lake.table_findings(
                lake_dir, default_account=read.get(s.DEFAULT_ACCOUNT), timeout_s=timeout_s
            )

    gateway_items = ("gateway reachable", "API answering", "server version", "client id free")
    if read.has(s.IB_HOST, s.IB_PORT, s.IB_CLIENT_ID):
        host, port, client_id = read.get(s.IB_HOST), read.get(s.IB_PORT), read.get(s.IB_CLIENT_ID)
        found = gateway.probe(host, port, client_id, timeout_s=timeout_s)
        for line in gateway.probe_lines(found, host=host, port=port, client_id=client_id):
            report.add(line)
        report.add(gateway.read_only_reminder())
        delta_accounts = findings.delta_accounts if findings else None
        why = findings.why_unknown if findings else "the lake cannot be read; see below"
        report.add(gateway.accounts_line(found, delta_accounts, read.get(s.ACCOUNTS), why))
        if found.api_ok and not found.client_id_in_use:
            budget = min(timeout_s, read.get(s.IB_TIMEOUT_S) or timeout_s)
            report.run(
                "snapshot",
                lambda: gateway.snapshot_line(host, port, client_id, timeout_s=budget),
            )
        else:
            report.add(skip("snapshot", "the API did not answer"))
    else:
        for item in (*gateway_items, "managed accounts", "snapshot"):
            report.add(skip(item, "V6_IB_HOST / V6_IB_PORT / V6_IB_CLIENT_ID invalid"))
        report.add(gateway.read_only_reminder())

    if lake_dir is None:
        for item in ("lake readable", "lake writable", "position_updates", "read checkpoint"):
            report.add(skip(item, "V6_LAKE_DIR invalid"))
    else:
        for line in access:
            report.add(line)
        if findings is not None:
            for line in findings.lines:
                report.add(line)
        else:
            for item in ("position_updates", "read checkpoint"):
                report.add(skip(item, "the lake is not readable"))

    report.add(alert_sinks_line(read))

    opened, line = instance.open_instance(timeout_s=timeout_s)
    report.add(line)
    report.run("dagster-daemon", lambda: instance.daemon_line(opened, timeout_s=timeout_s))
    try:
        for line in instance.instigator_lines(opened, timeout_s=timeout_s):
            report.add(line)
    except Exception as exc:
        report.add(fail("schedule and sensors", f"{type(exc).__name__}: {exc}"))

    if lake_dir is None or not read.has(s.STREAM_DEAD_AFTER_S):
        report.add(skip("v6 stream", "V6_LAKE_DIR or V6_STREAM_DEAD_AFTER_S invalid"))
    elif findings is None:
        report.add(skip("v6 stream", "the lake is not readable"))
    else:
        report.run(
            "v6 stream",
            lambda: stream.stream_line(
                lake_dir, read.get(s.STREAM_DEAD_AFTER_S), timeout_s=timeout_s
            ),
        )
    return report
