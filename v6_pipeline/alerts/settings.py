"""Every alert setting, parsed and checked at once: a bad value is an error naming the
setting and the entry when the code location loads, not at 3 a.m. in a sensor tick.

| setting | default | |
|---|---|---|
| V6_ALERT_URLS | empty | Apprise URLs, comma or space separated; empty = log and alert_log only |
| V6_ALERT_MIN_SEVERITY | critical | `critical` or `warning` |
| V6_ALERT_REMIND_S | 3600 | remind of an open incident; empty, 0, `never` or `off` = never |
| V6_ALERT_SILENCE_S | 900 | alert when no window was judged for this long |
| V6_ALERT_GIVE_UP_S | 86400 | retry an undelivered alert this long, then log it as lost |
| V6_HEARTBEAT_URL | empty | dead-man's switch, pinged (GET) after each healthy tick |
| V6_UI_URL | http://127.0.0.1:3000 | base of the links in alerts |
| V6_IB_QUIET_WINDOWS | empty | e.g. `23:40-00:15 America/New_York, 00:15-01:45 America/New_York` |

Defaults and bounds are the `Setting`s' of `v6_pipeline/settings.py` (durations: more
than 0 s, at most ten years). A day of retries (`V6_ALERT_GIVE_UP_S`) outlasts a
weekend-free outage of a chat service, yet an alert older than that is news nobody can
act on any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from v6_pipeline import settings as s
from v6_pipeline.alerts.delivery import parse_urls
from v6_pipeline.alerts.incidents import Policy
from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.alerts.state import IncidentKind

SEVERITIES = s.SEVERITIES


def _optional_seconds(setting: s.OptionalSetting[float], raw: str) -> timedelta | None:
    value = setting.parse(raw)
    return None if value is None else timedelta(seconds=value)


_REMIND_AFTER = _optional_seconds(s.ALERT_REMIND_S, s.ALERT_REMIND_S.default)


@dataclass(frozen=True)
class AlertSettings:
    urls: tuple[str, ...] = ()
    min_severity: str = s.ALERT_MIN_SEVERITY.value()
    remind_after: timedelta | None = _REMIND_AFTER
    silence_after: timedelta = timedelta(seconds=s.ALERT_SILENCE_S.value())
    give_up_after: timedelta = timedelta(seconds=s.ALERT_GIVE_UP_S.value())
    heartbeat_url: str | None = None
    ui_url: str = s.UI_URL.value()
    quiet: QuietWindows = field(default_factory=QuietWindows)

    @classmethod
    def parse(
        cls,
        *,
        urls: str = s.ALERT_URLS.default,
        min_severity: str = s.ALERT_MIN_SEVERITY.default,
        remind_s: str = s.ALERT_REMIND_S.default,
        silence_s: str = s.ALERT_SILENCE_S.default,
        give_up_s: str = s.ALERT_GIVE_UP_S.default,
        heartbeat_url: str = s.HEARTBEAT_URL.default,
        ui_url: str = s.UI_URL.default,
        quiet_windows: str = s.IB_QUIET_WINDOWS.default,
    ) -> AlertSettings:
        """Settings from the raw strings of the `V6_*` variables. Pass the documented
        default for an unset variable; for `remind_s` an empty string means never."""
        return cls(
            urls=parse_urls(s.ALERT_URLS.parse(urls) or ""),
            min_severity=s.ALERT_MIN_SEVERITY.parse(min_severity),
            remind_after=_optional_seconds(s.ALERT_REMIND_S, remind_s),
            silence_after=timedelta(seconds=s.ALERT_SILENCE_S.parse(silence_s)),
            give_up_after=timedelta(seconds=s.ALERT_GIVE_UP_S.parse(give_up_s)),
            heartbeat_url=s.HEARTBEAT_URL.parse(heartbeat_url),
            ui_url=s.UI_URL.parse(ui_url),
            quiet=QuietWindows.parse(s.IB_QUIET_WINDOWS.parse(quiet_windows) or ""),
        )

    def policy(self, *kinds: IncidentKind) -> Policy:
        """The incident policy of a sensor that follows `kinds`; warnings only when
        `min_severity` is warning."""
        follow = frozenset(kinds)
        if self.min_severity == "critical":
            follow -= {IncidentKind.WARNING}
        return Policy(
            follow=follow,
            remind_after=self.remind_after,
            silence_after=self.silence_after,
            quiet=self.quiet,
        )
