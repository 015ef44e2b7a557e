"""What an alert says, as a trader reads it, and that it stays short."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from v6_pipeline.alerts.compose import MAX_BODY_CHARS, compose, leg_line
from v6_pipeline.alerts.incidents import Alert, Policy
from v6_pipeline.alerts.state import AlertKind, IncidentKind
from v6_pipeline_tests.alerts.support import (
    T0,
    UNREACHABLE_SENTENCE,
    WINDOW,
    Driver,
    failed,
    leg,
    succeeded,
    window,
)

UI = "http://dagster.example:3000/"


def naked_alerts(*windows_legs: list) -> list[Alert]:
    d = Driver(Policy(remind_after=None))
    for n, legs in enumerate(windows_legs):
        d.tick(T0 + (n + 1) * WINDOW, window(T0 + n * WINDOW, *legs))
    return d.alerts


def test_a_leg_reads_as_a_trader_says_it() -> None:
    assert leg_line(leg(500123, delta=-3)) == (
        "DU111  SPY 2027-01-15 600 C (conid 500123): NAKED_POSITION, IB 0, Delta -3"
    )
    missing = leg(7, type="MISSING_FROM_DELTA", ib=2, delta=None)
    assert leg_line(missing).endswith("MISSING_FROM_DELTA, IB 2, Delta no row")


def test_a_naked_alert_names_the_accounts_the_positions_and_links_the_window() -> None:
    [alert] = naked_alerts([leg(1, delta=-3), leg(2, account="DU222", delta=1.5)])
    message = compose(alert, ui_url=UI)
    assert message.title == (
        "CRITICAL: 2 naked position(s) in DU111, DU222 (window 2026-11-25-14:00 UTC)"
    )
    assert message.notify_type == "failure"
    body = message.body
    assert "Accounts: DU111, DU222" in body
    assert "Delta Lake believes these positions are open; IB does not hold them." in body
    assert "DU111  SPY 2027-01-15 600 C (conid 1): NAKED_POSITION, IB 0, Delta -3" in body
    assert "DU222  SPY 2027-01-15 600 C (conid 2): NAKED_POSITION, IB 0, Delta 1.5" in body
    assert "    Delta Lake holds 1.5 of SPY but IB reports none." in body
    assert "Open since: 2026-11-25 14:05 UTC" in body
    assert "Run: http://dagster.example:3000/runs/run251400" in body
    assert (
        "Discrepancies: http://dagster.example:3000/assets/position_discrepancies"
        "?view=partitions&partition=2026-11-25-14%3A00"
    ) in body
    assert "more" not in body


def test_changed_reminder_and_resolved_say_so() -> None:
    opened, changed, resolved = naked_alerts([leg(1)], [leg(1), leg(2)], [])
    assert compose(changed).title.startswith("CRITICAL, changed: 2 naked position(s)")
    assert "(changed: 1 leg(s) added)" in compose(changed).body
    reminder = Alert(AlertKind.REMINDER, opened.incident, opened.at, "still open since 14:05")
    assert compose(reminder).title.startswith("CRITICAL, still open: 1 naked position(s)")
    message = compose(resolved)
    assert message.title == (
        "RESOLVED: naked position(s) in DU111 cleared (window 2026-11-25-14:10 UTC)"
    )
    assert message.notify_type == "success"
    assert "Cleared: window 2026-11-25-14:10 has none of its legs. It had 2 leg(s):" in message.body
    assert "(conid 2)" in message.body


def test_500_legs_are_cut_with_and_n_more_under_the_cap() -> None:
    long_details = "x" * 5000
    legs = [leg(n, account=f"DU{n % 4}") for n in range(500)]
    legs[0] = replace(legs[0], details=long_details)
    [alert] = naked_alerts(legs)
    message = compose(alert)
    assert len(message.body) <= MAX_BODY_CHARS
    assert len(message.title) <= 200
    assert "500 naked position(s) in DU0, DU1, DU2, DU3" in message.title
    shown = message.body.count("NAKED_POSITION, IB 0")
    assert 5 <= shown <= 20
    assert f"and {500 - shown} more (table position_discrepancies)" in message.body
    assert "x" * 400 not in message.body  # one long sentence cannot take the message over
    assert message.body.rstrip().endswith(f"(open: {alert.reason})")  # the footer survives


def test_a_pipeline_alert_gives_the_cause_the_sentence_since_when_and_how_many() -> None:
    d = Driver(Policy(follow=frozenset({IncidentKind.PIPELINE}), remind_after=None))
    for n in range(1, 7):
        d.tick(T0 + n * WINDOW, failed(T0 + n * WINDOW))
    d.tick(T0 + 7 * WINDOW, succeeded(T0 + 7 * WINDOW))
    opened, resolved = d.alerts
    message = compose(opened)
    assert message.title == (
        "CRITICAL: reconciliation failing (GatewayUnreachableError) since 2026-11-25 14:05 UTC,"
        " 1 run(s)"
    )
    assert UNREACHABLE_SENTENCE in message.body
    assert "Run: http://127.0.0.1:3000/runs/run251405-Gate" in message.body
    done = compose(resolved)
    assert done.title == "RESOLVED: reconciliation works again (GatewayUnreachableError cleared)"
    assert "It had failed 6 run(s) since 2026-11-25 14:05 UTC." in done.body


def test_a_silence_alert_says_since_when_and_the_last_failure() -> None:
    d = Driver(Policy(remind_after=None, silence_after=timedelta(minutes=15)))
    d.tick(T0, window(T0 - WINDOW))
    d.tick(T0 + timedelta(minutes=2), failed(T0 + timedelta(minutes=2)))
    d.tick(T0 + timedelta(minutes=20))
    silence = d.alerts[-1]
    message = compose(silence)
    assert message.title == "CRITICAL: reconciliation has not judged a window since 14:00 UTC"
    assert (
        "Reconciliation has not judged a window since 14:00 UTC; last failure: "
        f"2026-11-25 14:02 UTC GatewayUnreachableError: {UNREACHABLE_SENTENCE}"
    ) in message.body


def test_a_silence_alert_on_a_fresh_instance_says_when_alerting_started() -> None:
    d = Driver(Policy(remind_after=None))
    d.tick(T0)
    d.tick(T0 + timedelta(minutes=16))
    message = compose(d.alerts[-1])
    assert message.title.endswith("since 14:00 UTC (when alerting started)")
    assert "last failure: none recorded" in message.body
