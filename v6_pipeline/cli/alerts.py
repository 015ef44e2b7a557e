"""`v6 alerts test`: one clearly-marked test alert through every V6_ALERT_URLS sink."""

from __future__ import annotations

import argparse
import os

HELP = "send a test alert through every V6_ALERT_URLS sink and say what each answered"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    test = sub.add_parser(
        "test",
        help="send one test alert to every sink; print per sink: delivered, or why not",
        description="Send one clearly-marked test alert through every V6_ALERT_URLS sink "
        "(one attempt each), print per sink whether it was delivered or what it answered, "
        "and record it in alert_log as kind 'test'. Exit 0 only when every sink took it.",
    )
    test.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="the longest all sends may take (default %(default)g)",
    )


def run(args: argparse.Namespace) -> int:
    from v6_pipeline import settings as s
    from v6_pipeline.alerts.delivery import parse_urls
    from v6_pipeline.alerts.trial import record, send_test

    raw = s.ALERT_URLS.read(os.environ) or ""
    ui_url = s.UI_URL.read(os.environ)
    lake_dir = s.LAKE_DIR.read(os.environ)
    try:
        urls = parse_urls(raw)
    except ValueError as exc:
        print(f"v6 alerts test: {exc}")
        return 1
    if not urls:
        print(
            f"v6 alerts test: {s.ALERT_URLS.variable} is empty, so alerts reach nobody (only the "
            "log and alert_log): set it to one or more Apprise URLs (README, Alerts) and run "
            "this again"
        )
        return 1
    print(f"sending a test alert to {len(urls)} sink(s) (one attempt each) ...", flush=True)
    results, outcomes = send_test(urls, ui_url=ui_url, deadline_s=args.timeout)
    for result in results:
        if result.delivered:
            print(f"✓ {result.label}: delivered")
        else:
            print(f"✗ {result.label}: not delivered: {result.said}")
    try:
        rows = record(lake_dir, outcomes)
        print(f"recorded in alert_log ({rows} row(s), kind 'test') under V6_LAKE_DIR={lake_dir}")
    except Exception as exc:  # the sends happened: say so, then why not recorded
        print(f"not recorded in alert_log under V6_LAKE_DIR={lake_dir}: {exc}")
        return 1
    failed = sum(not r.delivered for r in results)
    if failed:
        print(f"{failed} of {len(results)} sink(s) did not take the test alert")
        return 1
    print("every sink took the test alert")
    return 0
