"""Quiet windows: parsing, midnight, daylight saving time, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from v6_pipeline.alerts.quiet import QuietWindows

RESET = "23:40-00:15 America/New_York, 00:15-01:45 America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_empty_means_never_quiet() -> None:
    quiet = QuietWindows.parse("  ")
    assert quiet.windows == ()
    assert not quiet.is_quiet(utc(2026, 11, 25, 5, 0))
    assert quiet.quiet_until(utc(2026, 11, 25, 5, 0)) is None
    assert quiet.last_end(utc(2026, 11, 25, 5, 0)) is None


@pytest.mark.parametrize(
    ("now", "quiet"),
    [
        # 25-26 November 2026, New York on EST (UTC-5).
        (utc(2026, 11, 26, 4, 39), False),  # 23:39
        (utc(2026, 11, 26, 4, 40), True),  # 23:40, the start is inside
        (utc(2026, 11, 26, 5, 0), True),  # midnight
        (utc(2026, 11, 26, 6, 44), True),  # 01:44
        (utc(2026, 11, 26, 6, 45), False),  # 01:45, the end is outside
        (utc(2026, 11, 26, 17, 0), False),  # noon
    ],
)
def test_a_window_crossing_midnight(now: datetime, quiet: bool) -> None:
    assert QuietWindows.parse(RESET).is_quiet(now) is quiet


def test_adjacent_windows_are_one_quiet_period() -> None:
    quiet = QuietWindows.parse(RESET)
    assert quiet.quiet_until(utc(2026, 11, 26, 4, 50)) == utc(2026, 11, 26, 6, 45)
    assert quiet.last_end(utc(2026, 11, 26, 12, 0)) == utc(2026, 11, 26, 6, 45)


@pytest.mark.parametrize(
    ("day", "start_utc_hour"),
    [
        ((2026, 7, 15), 3),  # EDT, UTC-4: 23:40 New York is 03:40 UTC
        ((2026, 1, 15), 4),  # EST, UTC-5: 04:40 UTC
    ],
)
def test_the_window_follows_daylight_saving_time(
    day: tuple[int, int, int], start_utc_hour: int
) -> None:
    quiet = QuietWindows.parse("23:40-00:15 America/New_York")
    start = utc(*day, start_utc_hour, 40)
    assert not quiet.is_quiet(start - timedelta(minutes=1))
    assert quiet.is_quiet(start)
    assert quiet.quiet_until(start) == start + timedelta(minutes=35)


def test_the_nights_daylight_saving_changes() -> None:
    quiet = QuietWindows.parse("01:00-03:00 America/New_York")
    # 8 March 2026: 02:00 EST jumps to 03:00 EDT, so the window lasts one real hour.
    spring = utc(2026, 3, 8, 6, 0)  # 01:00 EST
    assert quiet.quiet_until(spring) == spring + timedelta(hours=1)
    # 1 November 2026: 02:00 EDT falls back to 01:00 EST, so it lasts three real hours.
    autumn = utc(2026, 11, 1, 5, 0)  # 01:00 EDT
    assert quiet.quiet_until(autumn) == autumn + timedelta(hours=3)
    assert quiet.is_quiet(autumn + timedelta(hours=2, minutes=59))


def test_several_zones_and_spacing() -> None:
    quiet = QuietWindows.parse("22:00-23:00 UTC,05:30 - 06:00   Europe/London")
    assert [str(w) for w in quiet.windows] == ["22:00-23:00 UTC", "05:30-06:00 Europe/London"]
    assert quiet.is_quiet(utc(2026, 7, 1, 4, 45))  # 05:45 in London (BST)
    assert not quiet.is_quiet(utc(2026, 7, 1, 5, 45))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("23:40-00:15", "not a quiet window"),  # no zone
        ("23.40-00:15 UTC", "not a quiet window"),
        ("tonight UTC", "not a quiet window"),
        ("24:00-01:00 UTC", "outside 00:00-23:59"),
        ("23:60-01:00 UTC", "outside 00:00-23:59"),
        ("01:00-01:00 UTC", "starts and ends at the same time"),
        ("23:40-00:15 America/NewYork", "unknown time zone 'America/NewYork'"),
        ("23:40-00:15 ../etc/passwd", "unknown time zone"),
    ],
)
def test_a_bad_entry_names_the_setting_and_the_entry(raw: str, message: str) -> None:
    good = "00:15-01:45 America/New_York"
    with pytest.raises(ValueError, match=message) as caught:
        QuietWindows.parse(f"{good}, {raw}")
    assert str(caught.value).startswith("V6_IB_QUIET_WINDOWS: ")
    assert repr(raw) in str(caught.value)
