"""The incident model, tick by tick with an injected clock and the state carried through
JSON as a sensor cursor carries it: a page per incident, not per window or run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v6_pipeline.alerts.incidents import KEPT_LEGS, Policy, step
from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.alerts.state import AlertKind, AlertState, IncidentKind
from v6_pipeline_tests.alerts.support import (
    T0,
    UNREACHABLE,
    UNREACHABLE_SENTENCE,
    WINDOW,
    Driver,
    failed,
    key,
    leg,
    succeeded,
    window,
)

NEVER_REMIND = Policy(remind_after=None)
# What reconciliation_failure_sensor follows (silence is another sensor's).
PIPELINE = Policy(follow=frozenset({IncidentKind.PIPELINE}), remind_after=None)
TICK = timedelta(seconds=20)  # a tick sees a window 20 s after its run recorded it


def at(n: int) -> datetime:
    """Window n's start; its observation is ticked at the end of window n+1."""
    return T0 + n * WINDOW


def drive_windows(driver: Driver, windows: list[tuple[int, list]]) -> None:
    for n, legs in windows:
        driver.tick(at(n + 1) + TICK, window(at(n), *legs))


# Naked legs: open, unchanged, changed, resolved.


def test_the_same_naked_set_over_five_windows_pages_once() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(n, [leg(1), leg(2)]) for n in range(5)])
    assert d.kinds() == [("naked", AlertKind.OPEN)]
    alert = d.alerts[0]
    assert alert.severity == "critical"
    assert alert.incident.leg_count == 2
    assert alert.window_key == key(at(0))
    assert alert.incident.id == f"naked-{key(at(0))}"


def test_a_leg_added_pages_once_more_and_says_what_changed() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(0, [leg(1)]), (1, [leg(1)]), (2, [leg(1), leg(2)]), (3, [leg(1), leg(2)])])
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.CHANGED)]
    assert d.alerts[1].reason == "1 leg(s) added"
    assert d.alerts[1].incident.id == d.alerts[0].incident.id  # the same incident
    assert d.alerts[1].window_key == key(at(2))


def test_a_changed_quantity_is_a_change() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(0, [leg(1, delta=-3)]), (1, [leg(1, delta=-5)]), (2, [leg(1, delta=-5)])])
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.CHANGED)]
    assert d.alerts[1].reason == "1 leg(s) changed quantity"


def test_a_leg_cleared_but_others_open_is_a_change_not_a_resolution() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(0, [leg(1), leg(2)]), (1, [leg(2)])])
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.CHANGED)]
    assert d.alerts[1].reason == "1 leg(s) cleared"


def test_cleared_pages_resolved_once_then_stays_quiet() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(0, [leg(1)]), (1, [leg(1)]), (2, []), (3, []), (4, [])])
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.RESOLVED)]
    resolved = d.alerts[1]
    assert resolved.window_key == key(at(2))
    assert resolved.incident.legs == (leg(1),)  # what was open, for the message
    assert d.state.incidents == ()


def test_a_naked_leg_back_after_clearing_is_a_new_incident() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(0, [leg(1)]), (1, []), (2, [leg(1)])])
    assert d.kinds() == [
        ("naked", AlertKind.OPEN),
        ("naked", AlertKind.RESOLVED),
        ("naked", AlertKind.OPEN),
    ]
    assert d.alerts[0].incident.id != d.alerts[2].incident.id


def test_three_windows_between_two_ticks_are_three_observations_in_order() -> None:
    d = Driver(NEVER_REMIND)
    d.tick(at(4), window(at(0), leg(1)), window(at(1)), window(at(2), leg(1), leg(2)))
    assert d.kinds() == [
        ("naked", AlertKind.OPEN),
        ("naked", AlertKind.RESOLVED),
        ("naked", AlertKind.OPEN),
    ]
    assert d.alerts[-1].incident.leg_count == 2


def test_the_same_key_in_two_accounts_is_two_legs() -> None:
    d = Driver(NEVER_REMIND)
    drive_windows(d, [(0, [leg(1, account="DU111")]), (1, [leg(1), leg(1, account="DU222")])])
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.CHANGED)]
    assert d.alerts[1].incident.accounts == ("DU111", "DU222")


def test_an_older_window_judged_after_a_newer_one_does_not_move_the_incident() -> None:
    d = Driver(NEVER_REMIND)
    d.tick(at(3), window(at(2), leg(1)))
    d.tick(at(3) + TICK, window(at(1)))  # a late re-run of an older window, clean
    assert d.kinds() == [("naked", AlertKind.OPEN)]
    assert any("newer window" in n for n in d.notes)


def test_the_newest_window_judged_again_after_a_repair_resolves() -> None:
    d = Driver(NEVER_REMIND)
    d.tick(at(3), window(at(2), leg(1)))
    d.tick(at(3) + TICK, window(at(2), run_id="rerun"))
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.RESOLVED)]
    assert d.alerts[1].run_id == "rerun"


# Warnings.


def test_warnings_are_their_own_incident_and_only_when_followed() -> None:
    mismatch = leg(7, type="POSITION_MISMATCH", ib=2, delta=1)
    stale = leg(8, type="STALE_DATA", ib=2, delta=2)
    followed = Driver(NEVER_REMIND)
    drive_windows(followed, [(0, [leg(1), mismatch]), (1, [leg(1), mismatch, stale]), (2, [])])
    assert followed.kinds() == [
        ("naked", AlertKind.OPEN),
        ("warning", AlertKind.OPEN),
        ("warning", AlertKind.CHANGED),
        ("naked", AlertKind.RESOLVED),
        ("warning", AlertKind.RESOLVED),
    ]
    assert {a.severity for a in followed.alerts if a.incident.kind == "warning"} == {"warning"}
    critical_only = Driver(Policy(follow=frozenset({IncidentKind.NAKED}), remind_after=None))
    drive_windows(critical_only, [(0, [leg(1), mismatch]), (1, [mismatch, stale])])
    assert critical_only.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.RESOLVED)]
    assert critical_only.state.open(IncidentKind.WARNING) is None


# Backfills.


def test_a_backfill_of_old_windows_never_pages_and_says_so_once_per_run() -> None:
    d = Driver(NEVER_REMIND)
    d.tick(
        at(100),
        *(window(at(n), leg(1), leg(2), live=False, run_id="backfill-1") for n in range(3)),
        failed(at(99), "TornSnapshotError", live=False),
    )
    assert d.alerts == []
    assert d.state.incidents == ()
    backfill_notes = [n for n in d.notes if "backfill run backfill-1" in n]
    assert len(backfill_notes) == 1
    assert "judged 3 window(s)" in backfill_notes[0]
    assert "6 naked" in backfill_notes[0]
    assert any("failed (TornSnapshotError)" in n for n in d.notes)


def test_a_state_not_fed_legs_does_not_count_a_backfills_discrepancies() -> None:
    # The failure and silence sensors read no legs (alert_feed, legs=False): "0 naked"
    # would be a verdict they never read.
    d = Driver(PIPELINE)
    d.tick(at(100), *(window(at(n), live=False, run_id="backfill-1") for n in range(3)))
    [note] = [n for n in d.notes if "backfill run backfill-1" in n]
    assert "judged 3 window(s)" in note
    assert "naked" not in note
    assert note.endswith("backfills never page")


def test_a_clean_backfill_does_not_resolve_a_live_incident() -> None:
    d = Driver(NEVER_REMIND)
    d.tick(at(3), window(at(2), leg(1)))
    d.tick(at(3) + TICK, window(at(2), live=False))
    assert d.kinds() == [("naked", AlertKind.OPEN)]
    assert d.state.open(IncidentKind.NAKED) is not None


# Pipeline failures.


def test_six_runs_failing_on_an_unreachable_gateway_page_once_then_resolve() -> None:
    d = Driver(PIPELINE)
    for n in range(1, 7):
        d.tick(at(n) + TICK, failed(at(n)))
    assert d.kinds() == [("pipeline", AlertKind.OPEN)]
    d.tick(at(7) + TICK, succeeded(at(7)))
    assert d.kinds() == [("pipeline", AlertKind.OPEN), ("pipeline", AlertKind.RESOLVED)]
    resolved = d.alerts[1].incident
    assert resolved.failed_runs == 6
    assert resolved.opened_at == at(1)
    [cause] = resolved.causes
    assert (cause.name, cause.runs, cause.message) == (UNREACHABLE, 6, UNREACHABLE_SENTENCE)


def test_a_different_failure_cause_is_a_change_and_flapping_causes_do_not_repeat() -> None:
    d = Driver(PIPELINE)
    causes = [UNREACHABLE, "ClientIdInUseError", UNREACHABLE, "ClientIdInUseError", UNREACHABLE]
    for n, cause in enumerate(causes, start=1):
        d.tick(at(n) + TICK, failed(at(n), cause))
    assert d.kinds() == [("pipeline", AlertKind.OPEN), ("pipeline", AlertKind.CHANGED)]
    assert d.alerts[1].reason == "runs now also fail with ClientIdInUseError"
    incident = d.state.open(IncidentKind.PIPELINE)
    assert incident is not None
    assert {c.name: c.runs for c in incident.causes} == {UNREACHABLE: 3, "ClientIdInUseError": 2}


def test_a_run_that_failed_only_on_the_naked_check_is_the_critical_incident_alone() -> None:
    # The sensor feeds such a run as RunSucceeded (the pipeline worked) and its window.
    d = Driver(NEVER_REMIND)
    d.tick(at(1) + TICK, failed(at(1)))
    d.tick(at(2) + TICK, succeeded(at(2)), window(at(1), leg(1)))
    assert d.kinds() == [
        ("pipeline", AlertKind.OPEN),
        ("pipeline", AlertKind.RESOLVED),
        ("naked", AlertKind.OPEN),
    ]


def test_a_backfill_run_failing_never_opens_a_pipeline_incident() -> None:
    d = Driver(NEVER_REMIND)
    d.tick(at(1), failed(at(1), "TornSnapshotError", live=False))
    assert d.alerts == []
    assert d.state.last_failure is None


# Quiet windows: IB's nightly reset.

RESET = QuietWindows.parse("23:40-00:15 America/New_York, 00:15-01:45 America/New_York")
NY_MIDNIGHT = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # 00:00 in New York (EST)


def ny(hh: int, mm: int) -> datetime:
    """A time of the New York night of 25-26 November 2026, in UTC."""
    base = NY_MIDNIGHT - timedelta(days=1) if hh >= 12 else NY_MIDNIGHT
    return base + timedelta(hours=hh, minutes=mm)


def quiet_driver(**kw: object) -> Driver:
    return Driver(Policy(remind_after=None, quiet=RESET, **kw))  # type: ignore[arg-type]


def test_ib_failures_inside_the_quiet_window_are_recorded_not_alerted() -> None:
    d = quiet_driver(silence_after=None)
    for minute in range(0, 120, 5):  # 23:45 .. 01:40 New York
        d.tick(
            ny(23, 45) + timedelta(minutes=minute) + TICK,
            failed(ny(23, 45) + timedelta(minutes=minute)),
        )
    d.tick(ny(1, 50) + TICK, succeeded(ny(1, 50)))
    assert d.alerts == []
    assert any("inside a quiet window" in n for n in d.notes)
    assert any("cleared before it was alerted" in n for n in d.notes)


def test_ib_failures_persisting_past_the_quiet_window_page_once() -> None:
    d = quiet_driver(silence_after=None)
    t = ny(23, 45)
    while t < ny(2, 30):
        d.tick(t + TICK, failed(t))
        t += WINDOW
    assert d.kinds() == [("pipeline", AlertKind.OPEN)]
    # Released by the first failure seen once the window ended (the 01:45 run), not
    # by the clock: IB often recovers by itself at the first run after its reset.
    assert d.alerts[0].at == ny(1, 45) + TICK
    assert d.alerts[0].incident.failed_runs == 25
    assert d.alerts[0].reason == "still failing after the quiet window ended"


def test_the_quiet_window_holds_back_neither_naked_legs_nor_lake_errors() -> None:
    d = quiet_driver(silence_after=None)
    d.tick(ny(0, 30), window(ny(0, 20), leg(1)), failed(ny(0, 25), "LakeSchemaError"))
    assert d.kinds() == [("naked", AlertKind.OPEN), ("pipeline", AlertKind.OPEN)]


def test_an_incident_alerted_before_the_quiet_window_resolves_inside_it() -> None:
    d = quiet_driver(silence_after=None)
    d.tick(ny(23, 30), failed(ny(23, 30)))
    d.tick(ny(23, 50), failed(ny(23, 50), "ConnectivityLostError"))  # a change, held
    d.tick(ny(0, 30), succeeded(ny(0, 30)))
    assert d.kinds() == [("pipeline", AlertKind.OPEN), ("pipeline", AlertKind.RESOLVED)]


# Reminders.


def test_a_reminder_after_the_interval_while_still_open_and_never_when_disabled() -> None:
    hourly = Driver(Policy(remind_after=timedelta(hours=1)))
    never = Driver(NEVER_REMIND)
    for d in (hourly, never):
        drive_windows(d, [(n, [leg(1)]) for n in range(30)])  # 2.5 hours
    assert never.kinds() == [("naked", AlertKind.OPEN)]
    assert hourly.kinds() == [
        ("naked", AlertKind.OPEN),
        ("naked", AlertKind.REMINDER),
        ("naked", AlertKind.REMINDER),
    ]
    opened, first, second = (a.at for a in hourly.alerts)
    assert timedelta(hours=1) <= first - opened < timedelta(hours=1) + WINDOW
    assert timedelta(hours=1) <= second - first < timedelta(hours=1) + WINDOW
    assert hourly.alerts[1].reason.startswith("still open since")


def test_a_change_restarts_the_reminder_clock() -> None:
    d = Driver(Policy(remind_after=timedelta(minutes=30)))
    drive_windows(d, [(n, [leg(1)] if n < 4 else [leg(1), leg(2)]) for n in range(9)])
    assert d.kinds() == [("naked", AlertKind.OPEN), ("naked", AlertKind.CHANGED)]


def test_a_reminder_comes_from_a_tick_without_any_new_observation() -> None:
    d = Driver(Policy(remind_after=timedelta(minutes=30), silence_after=None))
    d.tick(at(1), failed(at(1)))
    d.tick(at(1) + timedelta(minutes=29))
    d.tick(at(1) + timedelta(minutes=30))
    assert d.kinds() == [("pipeline", AlertKind.OPEN), ("pipeline", AlertKind.REMINDER)]


# Silence.


def test_a_fresh_state_starts_the_silence_clock_at_its_first_tick() -> None:
    d = Driver(Policy(remind_after=None))
    d.tick(at(0))
    d.tick(at(0) + timedelta(minutes=14, seconds=59))
    assert d.alerts == []
    d.tick(at(0) + timedelta(minutes=15))
    assert d.kinds() == [("silence", AlertKind.OPEN)]
    silence = d.alerts[0].incident
    assert silence.silent_since == at(0)
    assert silence.window_key is None  # never judged one


def test_silence_says_since_when_and_the_last_failure_then_resolves_once() -> None:
    d = Driver(Policy(remind_after=None))
    d.tick(at(1), window(at(0)))
    judged = window(at(0)).judged_at
    d.tick(at(2), failed(at(2)))
    for minute in range(0, 30):
        d.tick(at(2) + timedelta(minutes=minute))
    assert d.kinds() == [("pipeline", AlertKind.OPEN), ("silence", AlertKind.OPEN)]
    silence = d.alerts[1]
    assert silence.at == judged + timedelta(minutes=15) + timedelta(seconds=55)  # next tick
    assert silence.incident.silent_since == judged
    assert silence.incident.last_failure == failed(at(2))
    d.tick(at(9), window(at(8)))
    assert d.kinds()[-1] == ("silence", AlertKind.RESOLVED)


def test_silence_is_paused_by_the_quiet_window_and_counts_again_after_it() -> None:
    d = quiet_driver()
    d.tick(ny(23, 30), window(ny(23, 25)))
    t = ny(23, 35)
    while t < ny(2, 30):
        d.tick(t)
        t += timedelta(minutes=1)
    assert d.kinds() == [("silence", AlertKind.OPEN)]
    assert d.alerts[0].at == ny(1, 45) + timedelta(minutes=15)


def test_a_first_tick_reading_an_old_window_gives_the_pipeline_its_full_silence_time() -> None:
    d = Driver(Policy(remind_after=None))
    d.tick(at(40), window(at(0)))  # the sensor's first tick finds a window from 3 h ago
    d.tick(at(40) + timedelta(minutes=14))
    assert d.alerts == []
    d.tick(at(40) + timedelta(minutes=15))
    assert d.kinds() == [("silence", AlertKind.OPEN)]
    assert d.alerts[0].incident.silent_since == window(at(0)).judged_at  # the truth


def test_backfills_do_not_stop_the_silence_clock() -> None:
    d = Driver(Policy(remind_after=None))
    d.tick(at(0))
    d.tick(at(3), window(at(1), live=False))
    d.tick(at(3) + timedelta(minutes=1))
    assert d.kinds() == [("silence", AlertKind.OPEN)]


# State: restarts, size, clock.


def test_a_restart_mid_sequence_neither_repeats_nor_forgets() -> None:
    policy = Policy(remind_after=timedelta(hours=1))
    sequence = [(n, [leg(1)]) for n in range(8)] + [(8, [])]
    whole = Driver(policy)
    drive_windows(whole, sequence)
    first = Driver(policy)
    drive_windows(first, sequence[:4])
    restarted = Driver(policy, cursor=first.cursor)  # a new daemon, the cursor kept
    drive_windows(restarted, sequence[4:])
    assert first.kinds() == [("naked", AlertKind.OPEN)]
    assert restarted.kinds() == [("naked", AlertKind.RESOLVED)]
    assert first.alerts + restarted.alerts == whole.alerts
    assert AlertState.from_json(first.cursor).to_json() == first.cursor


def test_the_state_stays_small_with_500_legs() -> None:
    d = Driver(NEVER_REMIND)
    legs = [leg(n, account=f"DU{n % 3}") for n in range(500)]
    drive_windows(d, [(0, legs)])
    incident = d.state.open(IncidentKind.NAKED)
    assert incident is not None
    assert incident.leg_count == 500
    assert len(incident.legs) == KEPT_LEGS
    assert incident.accounts == ("DU0", "DU1", "DU2")
    assert len(d.cursor or "") < 15_000
    drive_windows(d, [(1, [*legs, leg(999)])])
    assert d.alerts[-1].reason == "the legs changed: 501 now, 500 before"


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        step(AlertState(), [], now=datetime(2026, 1, 1), policy=Policy())  # noqa: DTZ001


def test_a_state_from_another_version_is_a_clear_error() -> None:
    text = json.dumps({"v": 99})
    with pytest.raises(ValueError, match="reset the sensor's cursor"):
        AlertState.from_json(text)


# Every sequence of windows: one page per change of the naked set, none per repeat.

LEGS = st.sets(st.sampled_from([(1, -3.0), (1, -5.0), (2, -1.0), (3, 2.0)]), max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(LEGS, min_size=1, max_size=12), st.integers(min_value=0, max_value=11))
def test_pages_follow_the_changes_of_the_naked_set_across_restarts(
    sets: list[set[tuple[int, float]]], restart_at: int
) -> None:
    policy = Policy(follow=frozenset({IncidentKind.NAKED}), remind_after=None)
    d = Driver(policy)
    windows = [
        [leg(conid, delta=q) for conid, q in sorted(dict(s).items())] for s in sets
    ]  # one quantity per key, as reconcile gives
    for n, legs in enumerate(windows):
        if n == restart_at:
            d = Driver(policy, cursor=d.cursor, alerts=d.alerts)
        drive_windows(d, [(n, legs)])
    states = [frozenset((x.conid, x.delta_position) for x in w) for w in windows]
    expected = []
    for before, now in zip([frozenset(), *states], states, strict=False):
        if before == now:
            continue
        expected.append(
            AlertKind.OPEN if not before else AlertKind.RESOLVED if not now else AlertKind.CHANGED
        )
    assert [a.kind for a in d.alerts] == expected


def test_an_incident_of_a_kind_no_longer_followed_is_dropped_not_reminded_forever() -> None:
    both = Policy(remind_after=timedelta(minutes=30), silence_after=None)
    d = Driver(both)
    d.tick(at(1), window(at(0), leg(1), leg(2, type="STALE_DATA", ib=1, delta=1)))
    assert len(d.state.incidents) == 2
    d.policy = Policy(
        follow=frozenset({IncidentKind.NAKED}), remind_after=timedelta(minutes=30)
    )  # V6_ALERT_MIN_SEVERITY back to critical
    d.tick(at(1) + timedelta(hours=2))
    assert [i.kind for i in d.state.incidents] == [IncidentKind.NAKED]
    assert d.kinds()[-1] == ("naked", AlertKind.REMINDER)
    assert any(n.startswith("warning-") and "no longer followed" in n for n in d.notes)


def test_an_unfollowed_kind_is_only_bookkeeping() -> None:
    d = Driver(Policy(follow=frozenset({IncidentKind.SILENCE}), remind_after=None))
    d.tick(at(1), failed(at(1)), window(at(0), leg(1)))
    assert d.alerts == []
    assert d.state.last_failure == failed(at(1))
    assert d.state.last_judged_at == window(at(0)).judged_at
    assert d.state.started_at == at(1)
    assert datetime.fromisoformat(json.loads(d.cursor or "")["started_at"]).tzinfo == UTC
