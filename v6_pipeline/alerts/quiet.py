"""Quiet windows: the daily hours in which IB-side failures are recorded, not alerted.

`V6_IB_QUIET_WINDOWS` is a comma-separated list of `HH:MM-HH:MM Zone` entries, e.g.
`23:40-00:15 America/New_York, 00:15-01:45 America/New_York`. A window may cross
midnight. Times are wall-clock times in the zone, so the window follows daylight
saving time: each day's occurrence is converted to UTC on its own. A wall time that
does not exist (spring forward) or exists twice (fall back) is read as zoneinfo does
with `fold=0`. Pure: no clock, `now` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SETTING = "V6_IB_QUIET_WINDOWS"
_ENTRY = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s+(\S+)")
_EXAMPLE = "23:40-00:15 America/New_York"


@dataclass(frozen=True)
class QuietWindow:
    """One daily window `[start, end)` of wall-clock time in `zone`."""

    start: time
    end: time
    zone: str

    def occurrences_around(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """The UTC intervals of the occurrences starting from two local days before `now`'s
        to the day after: every one that can contain `now`, and the latest that ended."""
        tz = ZoneInfo(self.zone)
        today = now.astimezone(tz).date()
        return [self._occurrence(today + timedelta(days=d), tz) for d in (-2, -1, 0, 1)]

    def _occurrence(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        end_day = day if self.start < self.end else day + timedelta(days=1)
        start = datetime.combine(day, self.start, tzinfo=tz).astimezone(UTC)
        end = datetime.combine(end_day, self.end, tzinfo=tz).astimezone(UTC)
        return start, end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone}"


@dataclass(frozen=True)
class QuietWindows:
    windows: tuple[QuietWindow, ...] = ()

    @classmethod
    def parse(cls, raw: str, *, setting: str = SETTING) -> QuietWindows:
        """Windows from `raw`; empty means none. A bad entry is a ValueError naming
        `setting` and the entry."""
        entries = [e.strip() for e in raw.split(",") if e.strip()]
        return cls(tuple(_parse_entry(e, setting) for e in entries))

    def is_quiet(self, now: datetime) -> bool:
        return self.quiet_until(now) is not None

    def quiet_until(self, now: datetime) -> datetime | None:
        """The UTC end of the quiet period holding `now` (adjacent or overlapping windows
        count as one period), or None when `now` is not quiet."""
        end = self._end_of_any_containing(now)
        if end is None:
            return None
        # Bounded: a set of daily windows covering the whole day would never end.
        for _ in range(8 * len(self.windows)):
            later = self._end_of_any_containing(end)
            if later is None:
                return end
            end = later
        return end

    def last_end(self, now: datetime) -> datetime | None:
        """The end of the latest quiet window occurrence that ended at or before `now`."""
        ends = [
            end
            for window in self.windows
            for _, end in window.occurrences_around(now)
            if end <= now
        ]
        return max(ends, default=None)

    def _end_of_any_containing(self, moment: datetime) -> datetime | None:
        ends = [
            end
            for window in self.windows
            for start, end in window.occurrences_around(moment)
            if start <= moment < end
        ]
        return max(ends, default=None)

    def __str__(self) -> str:
        return ", ".join(str(w) for w in self.windows) or "none"


def _parse_entry(entry: str, setting: str) -> QuietWindow:
    match = _ENTRY.fullmatch(entry)
    if match is None:
        raise ValueError(
            f"{setting}: {entry!r} is not a quiet window; write HH:MM-HH:MM and a time "
            f"zone, e.g. {_EXAMPLE!r} (several separated by commas)"
        )
    h1, m1, h2, m2, zone = match.groups()
    start, end = _clock(h1, m1, entry, setting), _clock(h2, m2, entry, setting)
    if start == end:
        raise ValueError(f"{setting}: {entry!r} starts and ends at the same time")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{setting}: {entry!r} names an unknown time zone {zone!r}; use an IANA name "
            "such as America/New_York, Europe/London or UTC"
        ) from None
    return QuietWindow(start, end, zone)


def _clock(hour: str, minute: str, entry: str, setting: str) -> time:
    h, m = int(hour), int(minute)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{setting}: {entry!r} has a time outside 00:00-23:59")
    return time(h, m)
