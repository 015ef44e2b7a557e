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

A day of retries (`V6_ALERT_GIVE_UP_S`) outlasts a weekend-free outage of a chat
service, yet an alert older than that is news nobody can act on any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from v6_pipeline.alerts.compose import DEFAULT_UI_URL
from v6_pipeline.alerts.delivery import parse_urls
from v6_pipeline.alerts.incidents import Policy
from v6_pipeline.alerts.quiet import QuietWindows
from v6_pipeline.alerts.state import IncidentKind

SEVERITIES = ("critical", "warning")
_NEVER = ("", "0", "never", "off")


@dataclass(frozen=True)
class AlertSettings:
    urls: tuple[str, ...] = ()
    min_severity: str = "critical"
    remind_after: timedelta | None = timedelta(seconds=3600)
    silence_after: timedelta = timedelta(seconds=900)
    give_up_after: timedelta = timedelta(seconds=86400)
    heartbeat_url: str | None = None
    ui_url: str = DEFAULT_UI_URL
    quiet: QuietWindows = field(default_factory=QuietWindows)

    @classmethod
    def parse(
        cls,
        *,
        urls: str = "",
        min_severity: str = "critical",
        remind_s: str = "3600",
        silence_s: str = "900",
        give_up_s: str = "86400",
        heartbeat_url: str = "",
        ui_url: str = DEFAULT_UI_URL,
        quiet_windows: str = "",
    ) -> AlertSettings:
        """Settings from the raw strings of the `V6_*` variables. Pass the documented
        default for an unset variable; for `remind_s` an empty string means never."""
        severity = min_severity.strip().lower()
        if severity not in SEVERITIES:
            raise ValueError(
                f"V6_ALERT_MIN_SEVERITY={min_severity!r}: write critical (the default: only "
                "naked positions and pipeline failures are sent) or warning (also mismatches)"
            )
        remind = (
            None if remind_s.strip().lower() in _NEVER else _seconds("V6_ALERT_REMIND_S", remind_s)
        )
        return cls(
            urls=parse_urls(urls),
            min_severity=severity,
            remind_after=remind,
            silence_after=_seconds("V6_ALERT_SILENCE_S", silence_s),
            give_up_after=_seconds("V6_ALERT_GIVE_UP_S", give_up_s),
            heartbeat_url=_http_url("V6_HEARTBEAT_URL", heartbeat_url) or None,
            ui_url=_http_url("V6_UI_URL", ui_url) or DEFAULT_UI_URL,
            quiet=QuietWindows.parse(quiet_windows),
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


def _seconds(name: str, raw: str) -> timedelta:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds; write e.g. 900") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{name}={raw!r} must be a positive number of seconds")
    return timedelta(seconds=value)


def _http_url(name: str, raw: str) -> str:
    url = raw.strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{name}={url!r} is not an http(s) URL; write e.g. https://hc-ping.com/<uuid> "
                "or http://127.0.0.1:3000"
            )
    return url
